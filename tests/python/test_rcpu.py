"""rcpu's Python module against numpy oracles: the statistics, the score, the selection, the Procrustes
rotation and the compensations computed from raw activations, plus the error messages and the rule that
nothing is modified on error. numpy only (torch is not needed here)."""
import numpy as np
import pytest

import rcpu


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def activations(rng, n, d, dtype=np.float64):
    # Non-zero means, channel scales over two decades: the statistics' hard case.
    x = rng.standard_normal((n, d)) * np.logspace(-1, 1, d) + np.linspace(-2, 3, d)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_equal_numpy(dtype):
    rng = np.random.default_rng(1)
    x = activations(rng, 300, 17, dtype)
    s = rcpu.Statistics(17)
    s.update(x[:120])
    s.update(x[120:])
    xd = x.astype(np.float64)
    assert s.tokens == 300 and s.channels == 17 and s.dtype == np.dtype(dtype).name
    assert rel(s.sum, xd.sum(0)) < 1e-13
    assert rel(s.abs_sum, np.abs(xd).sum(0)) < 1e-13
    assert rel(s.sq_sum, (xd * xd).sum(0)) < 1e-13
    assert rel(s.mean, xd.mean(0)) < 1e-13
    assert rel(s.variance, xd.var(0)) < 1e-12  # population variance
    assert rel(s.mean_abs, np.abs(xd).mean(0)) < 1e-13
    assert rel(s.gram, xd.T @ xd) < 1e-13


def test_statistics_fortran_order_and_merge():
    rng = np.random.default_rng(2)
    x = activations(rng, 200, 9)
    whole = rcpu.Statistics(9)
    whole.update(np.asfortranarray(x))
    a, b = rcpu.Statistics(9), rcpu.Statistics(9)
    a.update(x[:77])
    b.update(x[77:])
    a.merge(b)
    assert a.tokens == 200
    for name in ("sum", "abs_sum", "sq_sum", "m2", "gram"):
        assert rel(getattr(a, name), getattr(whole, name)) < 1e-13, name


def test_strided_rows_and_columns_are_read_in_place():
    rng = np.random.default_rng(12)
    big = activations(rng, 40, 30)
    whole = rcpu.Statistics(10)
    whole.update(np.ascontiguousarray(big[5:25, 3:13]))
    for view in (big[5:25, 3:13], np.asfortranarray(big)[5:25, 3:13]):  # row pitch 30 / column pitch 40
        s = rcpu.Statistics(10)
        s.update(view)
        for name in ("sum", "sq_sum", "gram"):
            assert rel(getattr(s, name), getattr(whole, name)) < 1e-14, name


def test_weights_in_any_layout():
    rng = np.random.default_rng(13)
    x, W, s = layer(rng)
    want = rcpu.prune_layer(np.asfortranarray(W), s, ratio=0.25).weight
    for view in (np.ascontiguousarray(W), W.T.copy().T, np.ascontiguousarray(W[::-1])[::-1]):
        assert np.array_equal(rcpu.prune_layer(view, s, ratio=0.25).weight, want)
    rank_one = np.broadcast_to(W[:, :1], W.shape)  # column stride 0: read element by element
    assert rcpu.unit_scores(rank_one, s).shape == (16,)


def test_float16_blocks_are_widened_like_float32():
    rng = np.random.default_rng(3)
    x16 = activations(rng, 5000, 8).astype(np.float16)  # more rows than one chunk (4096)
    a, b = rcpu.Statistics(8, dtype="float32"), rcpu.Statistics(8, dtype="float32")
    a.update(x16)
    b.update(x16.astype(np.float32))
    # The same values; the sums differ in the last bits only because the chunks are separate updates.
    for name in ("sum", "abs_sum", "sq_sum", "m2", "gram"):
        assert rel(getattr(a, name), getattr(b, name)) < 1e-14, name


def test_diagonal_statistics_have_no_gram():
    s = rcpu.Statistics(4, gram=False)
    s.update(np.ones((3, 4)))
    assert not s.has_gram
    with pytest.raises(ValueError, match="Gram"):
        s.gram


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    s = rcpu.Statistics(6)
    s.update(activations(rng, 50, 6, np.float32))
    s.save(str(tmp_path / "stats"))
    t = rcpu.Statistics.load(str(tmp_path / "stats"))
    assert t.tokens == 50 and t.dtype == "float32"
    for name in ("sum", "abs_sum", "sq_sum", "m2", "gram"):
        assert np.array_equal(getattr(s, name), getattr(t, name)), name


def test_bad_blocks_raise_and_change_nothing():
    s = rcpu.Statistics(5, dtype="float32")
    s.update(np.ones((4, 5), dtype=np.float32))
    before = s.sum.copy()
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*5 channels"):
        s.update(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        s.update(np.ones((2, 3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="dtype"):
        s.update(np.ones((2, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="float64"):
        s.update(np.ones((2, 5)))  # float64 into float32 statistics: narrowing refused
    with pytest.raises(ValueError, match="strided view"):
        s.update(np.ones((4, 10), dtype=np.float32)[:, ::2])
    with pytest.raises(ValueError, match="broadcast"):
        s.update(np.broadcast_to(np.ones(5, dtype=np.float32), (3, 5)))  # row stride 0
    with pytest.raises(ValueError, match="reversed"):
        s.update(np.ones((3, 5), dtype=np.float32)[::-1])
    bad = np.ones((5000, 5), dtype=np.float16)
    bad[4500, 2] = np.nan  # in the second chunk: the first must not have been added
    with pytest.raises(ValueError):
        s.update(bad)
    bad32 = np.ones((3, 5), dtype=np.float32)
    bad32[1, 1] = np.inf
    with pytest.raises(ValueError):
        s.update(bad32)
    assert s.tokens == 4 and np.array_equal(s.sum, before)
    # A first block that fails leaves the dtype undecided.
    t = rcpu.Statistics(5)
    with pytest.raises(ValueError):
        t.update(np.full((2, 5), np.nan, dtype=np.float32))
    assert t.dtype == "unset"
    t.update(np.ones((2, 5)))
    assert t.dtype == "float64"
    with pytest.raises(ValueError, match="gram=False"):
        t.merge(rcpu.Statistics(5, gram=False))
    with pytest.raises(ValueError, match="channels"):
        rcpu.Statistics(-1)
    with pytest.raises(ValueError, match="dtype"):
        rcpu.Statistics(3, dtype="int8")


def test_scores_and_selection_match_the_formula():
    rng = np.random.default_rng(5)
    x = activations(rng, 400, 12)
    W = rng.standard_normal((6, 12))
    s = rcpu.Statistics(12)
    s.update(x)
    g = np.linalg.norm(W, axis=0) * np.abs(x).mean(0) * x.var(0)  # METHOD.md: the RCPU score
    assert rel(rcpu.unit_scores(W, s), g) < 1e-12
    heads = rcpu.unit_scores(W, s, group_size=4, module="attention")
    assert rel(heads, g.reshape(3, 4).sum(1)) < 1e-12
    kept = rcpu.select_kept(g, 0.25)
    assert kept == sorted(np.argsort(-g, kind="stable")[:9].tolist())
    with pytest.raises(ValueError, match="ratio"):
        rcpu.select_kept(g, 1.0)
    with pytest.raises(ValueError, match="score"):
        rcpu.unit_scores(W, s, score="nonsense")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_procrustes_recovers_an_exact_rotation(dtype):
    rng = np.random.default_rng(6)
    Q0, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    Z = rng.standard_normal((10, 40))
    M = (Q0 @ Z) @ Z.T  # M = Y Z^T with Y = Q0 Z: Q0 is the maximiser
    Q, sigma = rcpu.procrustes(M.astype(dtype))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert Q.dtype == dtype and rel(Q, Q0) < tol
    assert rel(sigma, np.linalg.svd(M, compute_uv=False)) < tol


def layer(rng, d_out=8, d_in=16, n=500):
    x = activations(rng, n, d_in)
    W = rng.standard_normal((d_out, d_in))
    s = rcpu.Statistics(d_in)
    s.update(x)
    return x, W, s


def test_rotation_equals_the_raw_activation_path():
    rng = np.random.default_rng(7)
    x, W, s = layer(rng)
    K = [0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 13, 15]
    Y, Z = W @ x.T, W[:, K] @ x[:, K].T
    U, _, Vt = np.linalg.svd(Y @ Z.T)
    want = (U @ Vt) @ W[:, K]
    got = rcpu.prune_layer(W, s, kept_units=K, compensation="rotation")
    assert got.kept_columns == K and got.weight.shape == (8, 12)
    assert rel(got.weight, want) < 1e-10
    assert got.report.after.relative_error < got.report.before.relative_error
    c = rcpu.compensate(W, s, K, method="rotation", full_rotation=True)
    assert rel(c.weight, want) < 1e-10 and rel(c.rotation, U @ Vt) < 1e-10
    # rotation_scale: s = tr(S) / ||Z||_F^2
    sc = rcpu.compensate(W, s, K, method="rotation_scale")
    sv = np.linalg.svd(Y @ Z.T, compute_uv=False)
    assert abs(sc.scale - sv.sum() / np.linalg.norm(Z) ** 2) < 1e-10 * sc.scale


def test_ridges_equal_their_closed_forms():
    rng = np.random.default_rng(8)
    x, W, s = layer(rng)
    K = list(range(0, 16, 2)) + [1, 3]
    K.sort()
    G = x.T @ x
    lam = 0.5
    H = G[np.ix_(K, K)] + lam * np.eye(len(K))
    prox = np.linalg.solve(H, (W @ G[:, K] + lam * W[:, K]).T).T
    got = rcpu.compensate(W, s, K, method="proximal_ridge", lam=lam)
    assert rel(got.weight, prox) < 1e-10
    ls = np.linalg.solve(H, (W @ G[:, K]).T).T
    assert rel(rcpu.compensate(W, s, K, method="least_squares", lam=lam).weight, ls) < 1e-10


def test_bias_and_float32_weights():
    rng = np.random.default_rng(9)
    x, W, s = layer(rng)
    b = rng.standard_normal(8)
    K = list(range(12))
    flap = rcpu.compensate(W, s, K, method="bias", bias=b)
    D = list(range(12, 16))
    assert rel(flap.bias, b + W[:, D] @ x[:, D].mean(0)) < 1e-12  # FLAP: b + W_D mu_D
    p = rcpu.prune_layer(W.astype(np.float32), s, ratio=0.25)
    assert p.weight.dtype == np.float32 and p.weight.shape == (8, 12) and len(p.unit_scores) == 16
    # k = 12 >= d_out = 8 on 500 tokens: Q is formed (d_out x d_out) and returned; W' = Q W_K.
    assert p.bias is None and p.rotation.shape == (8, 8)
    assert rel(p.rotation.T @ p.rotation, np.eye(8)) < 1e-5
    assert rel(p.weight, p.rotation @ W[:, p.kept_columns].astype(np.float32)) < 1e-5
    # o_proj-like (k < d_out): no Q is formed unless full_rotation.
    h = rcpu.prune_layer(W, s, ratio=0.75, head_dim=4)
    assert h.rotation is None and h.weight.shape == (8, 4) and len(h.kept_units) == 1
    assert rcpu.prune_layer(W, s, ratio=0.75, head_dim=4, full_rotation=True).rotation.shape == (8, 8)
    assert "relative error" in str(p.report)


def test_prune_layer_bad_input_names_it():
    rng = np.random.default_rng(10)
    x, W, s = layer(rng)
    with pytest.raises(ValueError, match="ratio"):
        rcpu.prune_layer(W, s, ratio=1.5)
    with pytest.raises(ValueError, match=r"prune_layer: W is 8x15 but stats has 16 channels"):
        rcpu.prune_layer(W[:, :15], s)
    with pytest.raises(ValueError, match="compensation"):
        rcpu.prune_layer(W, s, compensation="nonsense")
    with pytest.raises(ValueError, match="group_size|head"):
        rcpu.prune_layer(W, s, head_dim=5)
    Wn = W.copy()
    Wn[0, 0] = np.nan
    with pytest.raises(ValueError):
        rcpu.prune_layer(Wn, s)
    with pytest.raises(ValueError, match="tokens"):
        rcpu.prune_layer(W, rcpu.Statistics(16))
