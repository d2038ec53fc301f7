// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_PRUNE_HPP
#define RCPU_CUDA_PRUNE_HPP

/// \file cuda/prune.hpp
/// One call that prunes one linear layer on the GPU (as rcpu::prune_layer, prune.hpp, with the same
/// rcpu::PruneOptions): score the units from device weights and statistics, keep the best 1 - ratio,
/// cut the columns, compensate on the device, and report. Scores need only per-column norms of W and
/// per-channel moments, which are reduced on the device and combined on the host (d_in numbers).

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../prune.hpp"
#include "../scores.hpp"
#include "../selection.hpp"
#include "compensation.hpp"
#include "config.hpp"
#include "context.hpp"
#include "detail/checks.hpp"
#include "detail/linalg.hpp"
#include "memory.hpp"
#include "statistics.hpp"

namespace rcpu {
namespace cuda {

/// Score of every input column of a device weight matrix (length d_in, on the host, in double), with
/// the formulas of rcpu::column_scores (scores.hpp).
/// \throws rcpu::invalid_argument on mismatched shapes, NaN/Inf in W, statistics without tokens (except
///         for Score::magnitude), or a score this backend does not know.
template <typename WMat, typename Acc>
Eigen::VectorXd column_scores(const Context& ctx, const WMat& W, const DeviceStatistics<Acc>& stats, Score score,
                              Module module = Module::mlp) {
  using Scalar = detail::scalar_of<WMat>;
  const MatrixView<const Scalar> w = detail::as_view(W);
  detail::check_view(w, "cuda::column_scores: W");
  detail::require(w.rows >= 1 && w.cols >= 1, "cuda::column_scores: W is " + detail::shape(w.rows, w.cols) +
                                                  ", must be non-empty");
  detail::require(stats.channels() == w.cols, "cuda::column_scores: W is " + detail::shape(w.rows, w.cols) +
                                                  " but stats has " + std::to_string(stats.channels()) +
                                                  " channels (need W.cols())");
  const ScopedDevice on(ctx.device());
  detail::require_finite<Scalar>(ctx, w, "cuda::column_scores: W");
  DeviceBuffer<double> abs_sums(static_cast<std::size_t>(w.cols)), sq_sums(static_cast<std::size_t>(w.cols));
  RCPU_CUDA_LAUNCH(detail::kernels::column_norms(w.data, w.ld, w.rows, w.cols, abs_sums.data(), sq_sums.data(),
                                                 ctx.stream()));
  const Eigen::ArrayXd col_abs_sum = detail::download_vector(ctx, abs_sums.data(), w.cols).array();
  const Eigen::ArrayXd col_norm = detail::download_vector(ctx, sq_sums.data(), w.cols).array().sqrt();
  if (score == Score::magnitude) return col_norm.matrix();

  detail::require(stats.tokens() > 0, "cuda::column_scores: the statistics hold no tokens (channels = " +
                                          std::to_string(stats.channels()) + ")");
  if (&stats.context() != &ctx) stats.context().synchronize();
  const Moments mom = stats.download_moments();
  const double n = double(mom.tokens);
  const Eigen::ArrayXd var = mom.m2.array() / n;
  const Eigen::ArrayXd mean_abs = mom.abs_sum.array() / n;
  const Eigen::ArrayXd sq = mom.sq_sum.array();
  if (score == Score::wanda_sp) return (col_abs_sum / double(w.rows) * (sq / n).sqrt()).matrix();
  if (score == Score::wanda_sp_rcpu) return (col_abs_sum * mean_abs).matrix();
  if (score == Score::flap) {
    Eigen::ArrayXd m = var * col_norm.square();
    if (module == Module::attention) m = m.square();
    return m.matrix();
  }
  if (score == Score::rcpu) return (col_norm * mean_abs * var).matrix();
  if (score == Score::rcpu_paper) return (col_norm * sq.sqrt() * var).matrix();
  detail::fail(std::string("cuda::column_scores: score '") + to_string(score) + "' is not implemented by the CUDA backend");
}

/// Scores of the prunable units (columns, or heads of group_size columns), as rcpu::unit_scores.
template <typename WMat, typename Acc>
Eigen::VectorXd unit_scores(const Context& ctx, const WMat& W, const DeviceStatistics<Acc>& stats, Score score,
                            Index group_size = 1, GroupReduce reduce = GroupReduce::automatic,
                            Module module = Module::mlp) {
  const auto w = detail::as_view(W);
  detail::require(group_size >= 1 && w.cols % group_size == 0,
                  "cuda::unit_scores: group_size = " + std::to_string(group_size) + " does not divide W's " +
                      std::to_string(w.cols) + " columns (W is " + detail::shape(w.rows, w.cols) + ")");
  return rcpu::group_scores(column_scores(ctx, W, stats, score, module), group_size, rcpu::resolve(reduce, score));
}

/// A pruned layer on the device: the compensated weight and bias, what was kept and why, the report.
template <typename Scalar>
struct PrunedLayer : Compensated<Scalar> {
  std::vector<Index> kept_units;    ///< kept columns or heads, increasing
  std::vector<Index> kept_columns;  ///< kept input columns of W, increasing (weight's column order)
  Eigen::VectorXd unit_scores;      ///< the score of every unit (empty when kept_units were given)

  /// The same result on the host (synchronises).
  rcpu::PrunedLayer<Scalar> to_host(const Context& ctx) const {
    rcpu::PrunedLayer<Scalar> h;
    static_cast<rcpu::Compensated<Scalar>&>(h) = Compensated<Scalar>::to_host(ctx);
    h.kept_units = kept_units;
    h.kept_columns = kept_columns;
    h.unit_scores = unit_scores;
    return h;
  }
};

namespace detail {

template <typename Scalar, typename Acc>
std::pair<std::vector<Index>, Eigen::VectorXd> choose_units(const Context& ctx, MatrixView<const Scalar> W,
                                                            const DeviceStatistics<Acc>& stats, const PruneOptions& o) {
  require(o.group_size >= 1 && W.cols % o.group_size == 0,
          "cuda::prune_layer: group_size = " + std::to_string(o.group_size) + " does not divide W's " +
              std::to_string(W.cols) + " columns (W is " + shape(W.rows, W.cols) + ")");
  const Index units = W.cols / o.group_size;
  if (!o.kept_units.empty()) {
    require_kept_set(o.kept_units, units, "cuda::prune_layer: kept_units");
    std::vector<Index> kept = o.kept_units;
    std::sort(kept.begin(), kept.end());
    return {kept, Eigen::VectorXd()};
  }
  require_ratio(o.ratio, "cuda::prune_layer: ratio");
  Eigen::VectorXd scores = unit_scores(ctx, W, stats, o.score, o.group_size, o.group_reduce, o.module);
  std::vector<Index> kept = rcpu::select_kept(scores, o.ratio);
  return {std::move(kept), std::move(scores)};
}

template <typename Scalar>
PrunedLayer<Scalar> finish_prune(Compensated<Scalar>&& c, std::pair<std::vector<Index>, Eigen::VectorXd>&& units,
                                 std::vector<Index>&& cols) {
  PrunedLayer<Scalar> out;
  static_cast<Compensated<Scalar>&>(out) = std::move(c);
  out.kept_units = std::move(units.first);
  out.unit_scores = std::move(units.second);
  out.kept_columns = std::move(cols);
  return out;
}

}  // namespace detail

/// Prunes the input columns (or heads) of y = W x + b on the GPU and compensates the kept ones.
/// \param ctx      device and stream
/// \param W        weights on the device, d_out x d_in (o_proj: heads are contiguous blocks of head_dim columns)
/// \param bias     bias on the device, d_out x 1
/// \param stats    device statistics of the layer's input on the calibration tokens
/// \param options  the CPU's rcpu::PruneOptions (ratio or kept_units, score, group_size, compensation)
/// \param solver   the GPU-only Procrustes knobs
/// \throws rcpu::invalid_argument on any bad input (nothing is modified); rcpu::cuda::Error if a CUDA
///         call fails. Numerical trouble is in result.report.info.
template <typename WMat, typename BVec, typename Acc>
PrunedLayer<detail::scalar_of<WMat>> prune_layer(const Context& ctx, const WMat& W, const BVec& bias,
                                                 const DeviceStatistics<Acc>& stats, const PruneOptions& options,
                                                 const SolverOptions& solver = {}) {
  using Scalar = detail::scalar_of<WMat>;
  const MatrixView<const Scalar> w = detail::as_view(W);
  const MatrixView<const Scalar> b = detail::as_view(bias);
  detail::check_layer(ctx, w, stats, "cuda::prune_layer");
  detail::check_bias(ctx, w, b, "cuda::prune_layer");
  auto units = detail::choose_units(ctx, w, stats, options);
  std::vector<Index> cols = rcpu::expand_groups(units.first, options.group_size);
  auto c = detail::compensate_device<Scalar, Acc>(ctx, w, b, true, stats, cols, options.compensation,
                                                  options.compensation_options, solver, "cuda::prune_layer");
  return detail::finish_prune(std::move(c), std::move(units), std::move(cols));
}

/// As above, for a layer without bias.
template <typename WMat, typename Acc>
PrunedLayer<detail::scalar_of<WMat>> prune_layer(const Context& ctx, const WMat& W, const DeviceStatistics<Acc>& stats,
                                                 const PruneOptions& options, const SolverOptions& solver = {}) {
  using Scalar = detail::scalar_of<WMat>;
  const MatrixView<const Scalar> w = detail::as_view(W);
  detail::check_layer(ctx, w, stats, "cuda::prune_layer");
  auto units = detail::choose_units(ctx, w, stats, options);
  std::vector<Index> cols = rcpu::expand_groups(units.first, options.group_size);
  auto c = detail::compensate_device<Scalar, Acc>(ctx, w, MatrixView<const Scalar>(), false, stats, cols,
                                                  options.compensation, options.compensation_options, solver,
                                                  "cuda::prune_layer");
  return detail::finish_prune(std::move(c), std::move(units), std::move(cols));
}

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_PRUNE_HPP
