// SPDX-License-Identifier: MIT
#ifndef RCPU_PRUNE_HPP
#define RCPU_PRUNE_HPP

/// \file prune.hpp
/// One call that prunes one linear layer: score the units (columns or heads), keep the best
/// 1 - ratio of them, cut the columns, compensate, and report.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "compensation.hpp"
#include "config.hpp"
#include "detail/checks.hpp"
#include "scores.hpp"
#include "selection.hpp"
#include "statistics.hpp"

namespace rcpu {

/// What to prune and how. The defaults are the RCPU paper's method on MLP channels at 20%.
struct PruneOptions {
  /// Fraction of units removed: floor(ratio * units). In [0, 1). Ignored when kept_units is set.
  double ratio = 0.2;
  /// Explicit kept units (columns, or heads when group_size > 1); overrides ratio and score.
  std::vector<Index> kept_units;
  /// Columns per unit: 1 for MLP channels (down_proj), head_dim for attention heads (o_proj).
  Index group_size = 1;
  /// Module::attention for o_proj (FLAP squares its metric there), Module::mlp for down_proj.
  Module module = Module::mlp;
  Score score = Score::rcpu;
  GroupReduce group_reduce = GroupReduce::automatic;
  Compensation compensation = Compensation::rotation;
  CompensationOptions compensation_options;

  /// Attention heads of o_proj: group_size = head_dim and Module::attention.
  static PruneOptions heads(Index head_dim, double ratio) {
    PruneOptions o;
    o.group_size = head_dim;
    o.module = Module::attention;
    o.ratio = ratio;
    return o;
  }
  /// MLP channels of down_proj.
  static PruneOptions channels(double ratio) {
    PruneOptions o;
    o.ratio = ratio;
    return o;
  }
};

/// A pruned layer: the compensated weight and bias, what was kept and why, and the report.
template <typename Scalar>
struct PrunedLayer : Compensated<Scalar> {
  std::vector<Index> kept_units;    ///< kept columns or heads, increasing
  std::vector<Index> kept_columns;  ///< kept input columns of W, increasing (weight's column order)
  Eigen::VectorXd unit_scores;      ///< the score of every unit (empty when kept_units were given)
};

namespace detail {

template <typename DerivedW, typename S, typename A>
std::pair<std::vector<Index>, Eigen::VectorXd> choose_units(const Eigen::MatrixBase<DerivedW>& W,
                                                            const Statistics<S, A>& stats, const PruneOptions& o) {
  require(o.group_size >= 1 && W.cols() % o.group_size == 0,
          "prune_layer: group_size = " + std::to_string(o.group_size) + " does not divide W's " +
              std::to_string(W.cols()) + " columns (W is " + shape(W) + ")");
  const Index units = W.cols() / o.group_size;
  if (!o.kept_units.empty()) {
    require_kept_set(o.kept_units, units, "prune_layer: kept_units");
    std::vector<Index> kept = o.kept_units;
    std::sort(kept.begin(), kept.end());
    return {kept, Eigen::VectorXd()};
  }
  require_ratio(o.ratio, "prune_layer: ratio");
  Eigen::VectorXd scores = unit_scores(W, stats, o.score, o.group_size, o.group_reduce, o.module);
  std::vector<Index> kept = select_kept(scores, o.ratio);
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

/// Prunes the input columns (or heads) of y = W x + b and compensates the kept ones.
/// \param W      weights, d_out x d_in (o_proj: heads are contiguous blocks of head_dim columns)
/// \param bias   bias, d_out
/// \param stats  statistics of the layer's input on the calibration tokens
/// \param options ratio or explicit kept units, score, group size, compensation
/// \throws rcpu::invalid_argument on any bad input (nothing is modified); numerical trouble is in
///         result.report.info.
template <typename DerivedW, typename DerivedB, typename S, typename A>
PrunedLayer<typename DerivedW::Scalar> prune_layer(const Eigen::MatrixBase<DerivedW>& W,
                                                   const Eigen::MatrixBase<DerivedB>& bias,
                                                   const Statistics<S, A>& stats, const PruneOptions& options) {
  detail::check_layer(W, stats, "prune_layer");
  detail::check_bias(W, bias, "prune_layer");
  auto units = detail::choose_units(W, stats, options);
  std::vector<Index> cols = expand_groups(units.first, options.group_size);
  auto c = compensate(W, bias, stats, cols, options.compensation, options.compensation_options);
  return detail::finish_prune(std::move(c), std::move(units), std::move(cols));
}

/// As above, for a layer without bias.
template <typename DerivedW, typename S, typename A>
PrunedLayer<typename DerivedW::Scalar> prune_layer(const Eigen::MatrixBase<DerivedW>& W,
                                                   const Statistics<S, A>& stats, const PruneOptions& options) {
  detail::check_layer(W, stats, "prune_layer");
  auto units = detail::choose_units(W, stats, options);
  std::vector<Index> cols = expand_groups(units.first, options.group_size);
  auto c = compensate(W, stats, cols, options.compensation, options.compensation_options);
  return detail::finish_prune(std::move(c), std::move(units), std::move(cols));
}

}  // namespace rcpu

#endif  // RCPU_PRUNE_HPP
