"""Statistics from several processes, combined as if one process had seen every token.

Each process (rank) calibrates on its own windows into its own `rcpu.Statistics`; `all_reduce` then
sums the token counts, the per-channel sums and the Gram over all ranks (torch.distributed, a group
whose backend sums CPU float64 tensors: gloo; with NCCL as the default, pass
`group=dist.new_group(backend="gloo")`) and combines the centred second moments m2 with the rule of
`Statistics.merge` (Chan, Golub and LeVeque), written for any number of shards:

    m2 = sum_r [ m2_r + n_r (mean_r - mean)^2 ],   mean = (sum_r s_r) / (sum_r n_r)

Four collective calls, whatever the number of ranks: a header that checks that every rank has the same
channels, Gram mode and dtype (else ValueError on every rank), the sums, the Gram, the m2 terms.
`combine` is the same arithmetic on a list of statistics in one process.

Accuracy: the means here are sum / n in double, so m2's relative error grows like eps |mean| / std
(about 1e-15 for LLM activations; 1e-12 for a channel whose mean is 1e5 standard deviations from 0).
`Statistics.merge` and the C++ `rcpu::mpi::allreduce` carry each shard's mean to twice double's
precision and stay near 1e-15 there.
"""
import numpy as np

from ._rcpu import Statistics

__all__ = ["all_reduce", "combine"]


def _m2_term(stats, tokens, total_sum):
    """This shard's share of the combined m2: its own m2 plus the spread of its mean about the total mean."""
    if stats.tokens == 0:
        return np.zeros(stats.channels)
    delta = stats.mean - total_sum / tokens
    return stats.m2 + stats.tokens * delta * delta


def _sums(stats):
    d = stats.channels
    if stats.tokens == 0:
        z = np.zeros(d)
        return z, z, z, (np.zeros((d, d)) if stats.has_gram else None)
    return stats.sum, stats.abs_sum, stats.sq_sum, (stats.gram if stats.has_gram else None)


def _agreed_dtype(dtypes, dtype, what):
    """The dtype of the result: `dtype` if given, else the one the shards that saw blocks share."""
    seen = sorted(set(dtypes) - {"unset"})
    if len(seen) > 1:
        raise ValueError(f"{what}: the statistics take different dtypes ({', '.join(seen)}); make them all float32 or all float64")
    return dtype or (seen[0] if seen else "float32")


def combine(shards, dtype=None):
    """The statistics of the union of disjoint shards (a list of `Statistics` with equal channels, gram and dtype)."""
    if not shards:
        raise ValueError("combine: shards is empty")
    d, gram = shards[0].channels, shards[0].has_gram
    for i, s in enumerate(shards):
        if s.channels != d or s.has_gram != gram:
            raise ValueError(f"combine: shard {i} has {s.channels} channels, gram={s.has_gram}; shard 0 has {d}, gram={gram}")
    out_dtype = _agreed_dtype([s.dtype for s in shards], dtype, "combine")
    tokens = sum(s.tokens for s in shards)
    parts = [_sums(s) for s in shards]
    total = [sum(p[k] for p in parts) for k in range(3)]
    g = sum(p[3] for p in parts) if gram else None
    m2 = sum(_m2_term(s, tokens, total[0]) for s in shards) if tokens else np.zeros(d)
    return Statistics.from_sums(tokens, total[0], total[1], total[2], m2, g, out_dtype)


def all_reduce(stats, group=None, dtype=None):
    """The statistics of every rank's tokens, on every rank (torch.distributed must be initialised).

    `stats` is this rank's `Statistics` (any number of tokens, 0 included; the same channels, gram and
    dtype on every rank that saw a block). Returns a new `Statistics`; `stats` is left as it is. The
    result's dtype: `dtype`, else the ranks' (float32 when no rank saw a block).
    \\raises ValueError on every rank if the ranks' channels, gram or dtypes differ."""
    import torch
    import torch.distributed as dist

    d = stats.channels
    # Header, reduced with MAX: (c, -c) give the largest and smallest channel counts, and so on.
    mine = [d, -d, int(stats.has_gram), -int(stats.has_gram), int(stats.dtype == "float32"), int(stats.dtype == "float64")]
    head = torch.tensor(mine, dtype=torch.int64)
    dist.all_reduce(head, op=dist.ReduceOp.MAX, group=group)
    h = head.tolist()
    if h[0] != -h[1] or h[2] != -h[3]:
        raise ValueError(f"all_reduce: the ranks' statistics differ: channels from {-h[1]} to {h[0]}, gram "
                         f"{'mixed' if h[2] != -h[3] else bool(h[2])} (this rank: {d} channels, gram={stats.has_gram})")
    out_dtype = _agreed_dtype([t for t, f in (("float32", h[4]), ("float64", h[5])) if f], dtype, "all_reduce")
    s, a, q, g = _sums(stats)
    # The token count travels with the sums, exact in float64 below 2^53.
    buf = torch.from_numpy(np.concatenate([np.array([float(stats.tokens)]), s, a, q]))
    dist.all_reduce(buf, group=group)
    b = buf.numpy()
    tokens = int(b[0])
    total = b[1:].reshape(3, d)
    if g is not None:
        gt = torch.from_numpy(np.ascontiguousarray(g))  # its own call: no concatenated copy of d x d
        dist.all_reduce(gt, group=group)
        g = gt.numpy()
    m2 = torch.from_numpy(_m2_term(stats, tokens, total[0]) if tokens else np.zeros(d))
    dist.all_reduce(m2, group=group)
    return Statistics.from_sums(tokens, total[0], total[1], total[2], m2.numpy(), g, out_dtype)
