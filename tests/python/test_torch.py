"""rcpu with torch tensors: CPU tensors of every supported dtype (float16 and bfloat16 widened in chunks,
subnormals included), views, the errors, and rcpu.distributed.all_reduce over 2 gloo processes.
Skipped, saying so, where torch is not installed (CI); tools/torch/setup.sh makes an environment with it."""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the torch tests need it (tools/torch/setup.sh)")

import rcpu  # noqa: E402
import rcpu.distributed  # noqa: E402
from test_rcpu import activations, rel  # noqa: E402

QUANTITIES = ("sum", "abs_sum", "sq_sum", "m2", "gram")


def stats_of(x, **kw):
    s = rcpu.Statistics(x.shape[1], **kw)
    s.update(x)
    return s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensors_equal_numpy_bit_for_bit(dtype):
    x = torch.from_numpy(activations(np.random.default_rng(31), 300, 11)).to(dtype)
    a, b = stats_of(x), stats_of(x.numpy())
    assert a.dtype == b.dtype == str(dtype).replace("torch.", "")
    for q in QUANTITIES:
        assert np.array_equal(getattr(a, q), getattr(b, q)), q
    # Views read in place: a transposed tensor (Fortran order) and a row slice.
    t = torch.from_numpy(np.asfortranarray(x.numpy())).to(dtype)
    assert not t.is_contiguous() and rel(stats_of(t).gram, b.gram) < 1e-13
    assert rel(stats_of(x[10:200]).gram, stats_of(x[10:200].contiguous()).gram) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_are_widened_exactly(dtype):
    x = activations(np.random.default_rng(32), 5000, 9)  # more than one 4096-row chunk
    # Subnormals of the narrow type, exactly representable in it, in one column.
    tiny = 2.0 ** -20 if dtype == torch.float16 else 2.0 ** -130
    x[:, 4] = tiny * np.arange(-3, 2)[np.arange(5000) % 5]
    t = torch.from_numpy(x).to(dtype)
    wide = t.float()
    assert (wide[:, 4] != 0).any() and float(wide[:, 4].abs().max()) < (6.2e-5 if dtype == torch.float16 else 1.2e-38)
    a, b = stats_of(t), stats_of(wide)
    assert a.dtype == "float32" and a.tokens == 5000
    for q in QUANTITIES:
        assert rel(getattr(a, q), getattr(b, q)) < 1e-13, q
    assert np.array_equal(a.sum[4:5], wide[:, 4:5].double().sum(0).numpy())
    # A narrow block into float64 statistics is widened to double.
    c = rcpu.Statistics(9, dtype="float64")
    c.update(t)
    assert rel(c.gram, wide.double().T.numpy() @ wide.double().numpy()) < 1e-13


def test_tensor_errors():
    s = rcpu.Statistics(8)
    x = torch.randn(16, 16)
    with pytest.raises(ValueError, match=r"strided view .*x.contiguous\(\)"):
        s.update(x[:, ::2])
    with pytest.raises(ValueError, match="expected a 2-D array"):
        s.update(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="is not float16, bfloat16, float32 or float64"):
        s.update(torch.ones(4, 8, dtype=torch.int32))
    bad = torch.randn(20, 8, dtype=torch.bfloat16)
    bad[19, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf at row 19, column 3"):
        s.update(bad)
    assert s.tokens == 0 and s.dtype == "unset"
    # A tensor that requires grad (a hook outside torch.no_grad) is read as it is, like its detached self.
    w = torch.randn(4, 8, requires_grad=True)
    s.update(w * 2)
    assert s.tokens == 4 and np.array_equal(s.sum, stats_of((w * 2).detach()).sum)


def test_pruned_weight_from_tensors():
    rng = np.random.default_rng(33)
    x = activations(rng, 400, 12)
    W = rng.standard_normal((6, 12))
    a = rcpu.prune_layer(torch.from_numpy(W), stats_of(torch.from_numpy(x)), ratio=0.25)
    b = rcpu.prune_layer(W, stats_of(x), ratio=0.25)
    assert a.kept_columns == b.kept_columns and np.array_equal(a.weight, b.weight)


def _rank(rank, world, path, init, case):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x = activations(np.random.default_rng(34), 700, 10)
    x[350:] += 25.0  # the ranks see different means
    cut = [0, 350, 700]
    if case == "mismatch":  # rank 1 has one channel more: both ranks must raise, naming the shapes
        try:
            rcpu.distributed.all_reduce(rcpu.Statistics(10 + rank))
            msg = "no error"
        except ValueError as e:
            msg = str(e)
        with open(os.path.join(path, f"rank{rank}.txt"), "w") as f:
            f.write(msg)
    else:
        s = rcpu.Statistics(10)
        if case == "normal":
            s.update(torch.from_numpy(x[cut[rank]:cut[rank + 1]]).float())
        elif rank == 0:  # "empty": rank 1 sees no token, rank 0 float64 blocks
            s.update(torch.from_numpy(x[:350]))
        c = rcpu.distributed.all_reduce(s)
        np.savez(os.path.join(path, f"rank{rank}.npz"), tokens=c.tokens, dtype=c.dtype,
                 **{q: getattr(c, q) for q in QUANTITIES + ("mean", "variance")})
    dist.destroy_process_group()


def _run(tmp_path, case):
    import torch.multiprocessing as mp

    init = "file://" + str(tmp_path / "rendezvous")
    mp.start_processes(_rank, args=(2, str(tmp_path), init, case), nprocs=2, start_method="spawn")


def test_all_reduce_over_two_gloo_processes(tmp_path):
    _run(tmp_path, "normal")
    x = activations(np.random.default_rng(34), 700, 10)
    x[350:] += 25.0
    one = stats_of(torch.from_numpy(x).float())
    for r in range(2):
        got = np.load(tmp_path / f"rank{r}.npz")
        assert int(got["tokens"]) == 700 and str(got["dtype"]) == "float32"
        for q in QUANTITIES + ("mean", "variance"):
            assert rel(got[q], getattr(one, q)) < 1e-12, (r, q)


def test_all_reduce_with_an_empty_rank(tmp_path):
    _run(tmp_path, "empty")
    one = stats_of(activations(np.random.default_rng(34), 700, 10)[:350])
    for r in range(2):
        got = np.load(tmp_path / f"rank{r}.npz")
        assert int(got["tokens"]) == 350 and str(got["dtype"]) == "float64"  # the empty rank takes rank 0's dtype
        for q in QUANTITIES + ("mean", "variance"):
            assert rel(got[q], getattr(one, q)) < 1e-12, (r, q)


def test_all_reduce_refuses_ranks_that_differ(tmp_path):
    _run(tmp_path, "mismatch")
    for r in range(2):
        msg = (tmp_path / f"rank{r}.txt").read_text()
        assert f"channels from 10 to 11, gram True (this rank: {10 + r} channels, gram=True)" in msg, msg
