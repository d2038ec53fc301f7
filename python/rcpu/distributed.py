"""Statistics from several processes, combined as if one process had seen every token.

Each process (rank) calibrates on its own windows into its own `rcpu.Statistics`; `all_reduce` then
sums the token counts, the per-channel sums and the Gram over all ranks (torch.distributed, any backend
that sums float64 tensors: gloo on CPU) and combines the centred second moments m2 with the rule of
`Statistics.merge` (Chan, Golub and LeVeque), written for any number of shards:

    m2 = sum_r [ m2_r + n_r (mean_r - mean)^2 ],   mean = (sum_r s_r) / (sum_r n_r)

so that each rank needs two collective calls, whatever the number of ranks. `combine` is the same
arithmetic on a list of statistics in one process (what the tests check against `merge`).
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


def _dtype(stats, dtype):
    if dtype is not None:
        return dtype
    return "float32" if stats.dtype == "unset" else stats.dtype


def _sums(stats):
    d = stats.channels
    if stats.tokens == 0:
        z = np.zeros(d)
        return z, z, z, (np.zeros((d, d)) if stats.has_gram else None)
    return stats.sum, stats.abs_sum, stats.sq_sum, (stats.gram if stats.has_gram else None)


def combine(shards, dtype=None):
    """The statistics of the union of disjoint shards (a list of `Statistics` with equal channels and gram)."""
    if not shards:
        raise ValueError("combine: shards is empty")
    d, gram = shards[0].channels, shards[0].has_gram
    for i, s in enumerate(shards):
        if s.channels != d or s.has_gram != gram:
            raise ValueError(f"combine: shard {i} has {s.channels} channels, gram={s.has_gram}; shard 0 has {d}, gram={gram}")
    tokens = sum(s.tokens for s in shards)
    parts = [_sums(s) for s in shards]
    total = [sum(p[k] for p in parts) for k in range(3)]
    g = sum(p[3] for p in parts) if gram else None
    m2 = sum(_m2_term(s, tokens, total[0]) for s in shards) if tokens else np.zeros(d)
    return Statistics.from_sums(tokens, total[0], total[1], total[2], m2, g, _dtype(shards[0], dtype))


def all_reduce(stats, group=None, dtype=None):
    """The statistics of every rank's tokens, on every rank (torch.distributed must be initialised).

    `stats` is this rank's `Statistics` (any number of tokens, 0 included; the same channels and gram
    on every rank). Returns a new `Statistics`; `stats` is left as it is. `dtype` of the result: that of
    `stats` (float32 when it saw no block)."""
    import torch
    import torch.distributed as dist

    d = stats.channels
    s, a, q, g = _sums(stats)
    # One buffer for the first call: the token count (exact in float64 below 2^53), the sums, the Gram.
    parts = [np.array([float(stats.tokens)]), s, a, q] + ([g.ravel()] if g is not None else [])
    buf = torch.from_numpy(np.concatenate(parts))
    dist.all_reduce(buf, group=group)
    b = buf.numpy()
    tokens = int(b[0])
    total = b[1:1 + 3 * d].reshape(3, d)
    m2 = torch.from_numpy(_m2_term(stats, tokens, total[0]) if tokens else np.zeros(d))
    dist.all_reduce(m2, group=group)
    g = b[1 + 3 * d:].reshape(d, d) if g is not None else None
    return Statistics.from_sums(tokens, total[0], total[1], total[2], m2.numpy(), g, _dtype(stats, dtype))
