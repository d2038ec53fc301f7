// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_DISTRIBUTED_HPP
#define RCPU_MODEL_DISTRIBUTED_HPP

/// \file distributed.hpp
/// The pruning pipeline with its calibration split across MPI processes (rcpu/mpi.hpp; link the CMake
/// target rcpu::mpi). Every rank passes the same dense model, calibration windows and options; each runs
/// the forward passes of its share of the windows, the statistics of every layer are all-reduced
/// (rcpu::mpi::allreduce, the same on every rank), and every rank ends with the same pruned model (let
/// rank 0 write it). Shares are whole chunks of PipelineOptions::chunk_windows windows, so a rank's
/// forward passes are those of one process over all windows, bit for bit; the statistics then differ
/// from one process's only by the order of their double sums.
///
///   rcpu::mpi::prune_models(dense, calibration, configs, comm)   rcpu::model::prune_models, distributed
///   rcpu::mpi::prune_model(dense, calibration, options, comm)
///   rcpu::mpi::calibration_share(calibration, seq_len, chunk_windows, rank, size)

#include "../detail/hash.hpp"
#include "../mpi.hpp"
#include "pipeline.hpp"

#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace rcpu {
namespace mpi {

/// The calibration windows of rank `rank` of `size`: chunk c (of chunk_windows consecutive windows of
/// seq_len tokens; the last one may be shorter) goes to rank floor(c * size / chunks). Empty when there
/// are fewer chunks than ranks and this rank gets none.
inline std::vector<std::int32_t> calibration_share(const std::vector<std::int32_t>& calibration, Index seq_len,
                                                   Index chunk_windows, int rank, int size) {
  rcpu::detail::require(seq_len >= 1 && chunk_windows >= 1 && size >= 1 && rank >= 0 && rank < size,
                        "calibration_share: seq_len = " + std::to_string(seq_len) + ", chunk_windows = " +
                            std::to_string(chunk_windows) + ", rank " + std::to_string(rank) + " of " + std::to_string(size));
  const Index windows = Index(calibration.size()) / seq_len;
  const Index chunks = (windows + chunk_windows - 1) / chunk_windows;
  // Chunks [c0, c1) with c * size / chunks == rank, i.e. c in [ceil(rank * chunks / size), ceil((rank+1) * chunks / size)).
  const auto first = [&](Index r) { return (r * chunks + size - 1) / size; };
  const Index c0 = first(rank), c1 = first(rank + 1);
  const Index w0 = std::min(windows, c0 * chunk_windows), w1 = std::min(windows, c1 * chunk_windows);
  return std::vector<std::int32_t>(calibration.begin() + w0 * seq_len, calibration.begin() + w1 * seq_len);
}

namespace detail {

inline std::string describe(const model::PipelineOptions& o) {
  std::ostringstream d;
  d << o.label << "|" << o.ratio << "|" << o.attention_ratio << "|" << o.mlp_ratio << "|" << to_string(o.score) << "|"
    << to_string(o.compensation) << "|" << o.relative_lambda << "|" << int(o.gqa) << "|" << int(o.allocation) << "|"
    << int(o.o_proj_rotation) << "|" << int(o.statistics) << "|" << o.seq_len << "|" << o.chunk_windows << "|"
    << o.compensate_attention << o.compensate_mlp << "|" << o.round_to << "|" << o.removed_heads.size() << "|"
    << o.removed_channels.size();
  return d.str();
}

}  // namespace detail

/// rcpu::model::prune_models with the calibration windows shared among the ranks of `comm`
/// (calibration_share) and every layer's statistics all-reduced. Collective: every rank calls it with
/// the same model, calibration and configurations, and gets the same results. `log` and `on_layer` are
/// used as given on every rank (pass them on rank 0 only for one copy).
/// \throws rcpu::invalid_argument on every rank when a rank's input is bad (the message names the
///         rank), when the ranks were given different calibrations, options or model shapes, or when
///         there are fewer chunks of chunk_windows windows than ranks. A failure inside the pipeline on
///         one rank only (which the others cannot wait out) aborts every rank (MPI_Abort) after
///         printing it.
inline std::vector<model::PipelineResult> prune_models(const model::LlamaModel& dense,
                                                       const std::vector<std::int32_t>& calibration,
                                                       const std::vector<model::PipelineOptions>& configs, MPI_Comm comm,
                                                       std::ostream* log = nullptr,
                                                       const model::LayerCallback& on_layer = {}) {
  const int me = rank(comm), p = size(comm);
  Index seq_len = 0, chunk_windows = 0;
  std::uint64_t fp = 0;
  collective(comm, "mpi::prune_models", [&] {
    rcpu::detail::require(!configs.empty(), "prune_models: no configuration");
    seq_len = configs.front().seq_len;
    chunk_windows = configs.front().chunk_windows;
    model::detail::check_calibration(dense.config(), calibration, seq_len, "prune_models");
    rcpu::detail::Fnv1a f;
    f.add(calibration.data(), calibration.size() * sizeof(std::int32_t));
    const model::LlamaConfig& c = dense.config();
    for (Index x : {c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn, c.vocab}) f.add(&x, sizeof x);
    for (const model::PipelineOptions& o : configs) {
      model::detail::validate_options(o, dense.config(), "prune_models");
      rcpu::detail::require(o.seq_len == seq_len && o.chunk_windows == chunk_windows,
                            "prune_models: every configuration needs the same seq_len and chunk_windows");
      f.add(detail::describe(o));
    }
    fp = f.h;
  });
  const std::vector<std::int64_t> fps = mpi::detail::allgather(reinterpret_cast<const std::int64_t*>(&fp), 1, comm);
  for (int r = 1; r < p; ++r)
    if (fps[std::size_t(r)] != fps[0])
      throw rcpu::invalid_argument("mpi::prune_models: rank " + std::to_string(r) +
                                   " was given another calibration, model shape or options than rank 0");
  const Index windows = Index(calibration.size()) / seq_len;
  const Index chunks = (windows + chunk_windows - 1) / chunk_windows;
  if (chunks < p)
    throw rcpu::invalid_argument("mpi::prune_models: " + std::to_string(p) + " ranks need at least " + std::to_string(p) +
                                 " chunks of chunk_windows = " + std::to_string(chunk_windows) + " windows; the calibration has " +
                                 std::to_string(windows) + " windows (" + std::to_string(chunks) +
                                 " chunks): lower chunk_windows or use fewer ranks");
  const std::vector<std::int32_t> share = calibration_share(calibration, seq_len, chunk_windows, me, p);
  const model::StatisticsReducer reduce = [comm](Statistics<float>& s) { allreduce(s, comm); };
  try {
    return model::prune_models(dense, share, configs, log, on_layer, reduce);
  } catch (const std::exception& e) {
    std::cerr << "rcpu::mpi::prune_models: rank " << me << " of " << p << ": " << e.what() << " (aborting every rank)\n";
    MPI_Abort(comm, 1);
    throw;  // not reached
  }
}

/// One configuration (see prune_models above).
inline model::PipelineResult prune_model(const model::LlamaModel& dense, const std::vector<std::int32_t>& calibration,
                                         const model::PipelineOptions& options, MPI_Comm comm, std::ostream* log = nullptr,
                                         const model::LayerCallback& on_layer = {}) {
  return std::move(prune_models(dense, calibration, {options}, comm, log, on_layer).front());
}

}  // namespace mpi
}  // namespace rcpu

#endif  // RCPU_MODEL_DISTRIBUTED_HPP
