"""rcpu: rotation-constrained error compensation for structured pruning of LLMs.

The C++ library's statistics, scores, selection, Procrustes solver and compensations for numpy arrays
and torch CPU tensors (docs/python.md). Sums are kept in double; float32/float64 blocks are read where
they lie (no copy), float16/bfloat16 blocks are widened in chunks. Bad input raises ValueError with the
C++ library's message; nothing is modified on error.

    stats = rcpu.Statistics(d_in)            # at down_proj's input
    stats.update(x)                           # x: tokens x d_in, from a forward hook
    pruned = rcpu.prune_layer(W_down, stats, ratio=0.2, compensation="rotation")
    W_new, kept = pruned.weight, pruned.kept_columns
"""
from ._rcpu import (LayerReport, OutputComparison, PrunedLayer, Statistics, compensate, procrustes,
                    prune_layer, select_kept, unit_scores)

__all__ = ["Statistics", "unit_scores", "select_kept", "procrustes", "compensate", "prune_layer",
           "PrunedLayer", "LayerReport", "OutputComparison"]
__version__ = "0.1.0"
