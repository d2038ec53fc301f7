// SPDX-License-Identifier: MIT
#ifndef RCPU_SELECTION_HPP
#define RCPU_SELECTION_HPP

/// \file selection.hpp
/// Which units to keep for a pruning ratio, and cutting the matching rows/columns out of matrices.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/checks.hpp"

namespace rcpu {

/// Number of units removed at ratio rho: floor(rho * n). A product that lands within 1e-9 of an
/// integer counts as that integer, so decimal ratios behave as written (0.29 * 100 removes 29).
/// \throws rcpu::invalid_argument if rho is outside [0, 1) or n < 1.
inline Index removed_count(Index units, double ratio) {
  detail::require_ratio(ratio, "ratio");
  detail::require(units >= 1, "removed_count: units = " + std::to_string(units) + " must be >= 1");
  const double r = ratio * double(units);
  const double nearest = std::round(r);
  const Index removed = std::abs(r - nearest) <= 1e-9 * std::max(1.0, r) ? Index(nearest) : Index(std::floor(r));
  return std::min(removed, units - 1);
}

/// The number of units to keep closest to `keep` (ties: the larger) among 1..units for which
/// count * width is a multiple of `multiple`; `keep` itself when multiple <= 0, when keep == units
/// (nothing removed) or when no such count exists.
inline Index rounded_keep(Index units, Index keep, Index width, Index multiple) {
  if (multiple <= 0 || keep >= units) return keep;
  Index best = -1;
  for (Index c = 1; c <= units; ++c) {
    if ((c * width) % multiple != 0) continue;
    if (best < 0 || std::abs(c - keep) < std::abs(best - keep) || (std::abs(c - keep) == std::abs(best - keep) && c > best))
      best = c;
  }
  return best < 0 ? keep : best;
}

/// Keeps the `count` best units. Ranking: higher score first; equal scores keep the lower index
/// (a stable, deterministic tie rule). Returns the kept unit indices in increasing order.
/// \throws rcpu::invalid_argument on NaN scores or count outside [1, n].
inline std::vector<Index> keep_top(const Eigen::Ref<const Eigen::VectorXd>& scores, Index count) {
  const Index n = scores.size();
  detail::require(n >= 1, "keep_top: scores is empty");
  detail::require(count >= 1 && count <= n, "keep_top: count = " + std::to_string(count) + " outside [1, " +
                                                std::to_string(n) + "]");
  detail::require(!scores.hasNaN(), "keep_top: scores (length " + std::to_string(n) + ") contain NaN");
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return scores(a) > scores(b); });
  order.resize(static_cast<std::size_t>(count));
  std::sort(order.begin(), order.end());
  return order;
}

/// Kept units for ratio rho: removes floor(rho * n) units with the lowest scores (see keep_top()
/// for the tie rule). Returns sorted indices.
inline std::vector<Index> select_kept(const Eigen::Ref<const Eigen::VectorXd>& scores, double ratio) {
  detail::require(scores.size() >= 1, "select_kept: scores is empty");
  return keep_top(scores, scores.size() - removed_count(scores.size(), ratio));
}

/// Column indices of kept groups: group g owns columns [g*group_size, (g+1)*group_size).
inline std::vector<Index> expand_groups(const std::vector<Index>& groups, Index group_size) {
  detail::require(group_size >= 1, "expand_groups: group_size = " + std::to_string(group_size) + " must be >= 1");
  std::vector<Index> cols;
  cols.reserve(groups.size() * static_cast<std::size_t>(group_size));
  for (Index g : groups)
    for (Index c = 0; c < group_size; ++c) cols.push_back(g * group_size + c);
  return cols;
}

/// Indices in [0, n) that are not in `kept`, increasing.
inline std::vector<Index> complement(const std::vector<Index>& kept, Index n) {
  detail::require_kept_set(kept, n, "kept");
  std::vector<char> in(static_cast<std::size_t>(n), 0);
  for (Index j : kept) in[static_cast<std::size_t>(j)] = 1;
  std::vector<Index> out;
  for (Index j = 0; j < n; ++j)
    if (!in[static_cast<std::size_t>(j)]) out.push_back(j);
  return out;
}

/// Rows `idx` of A, in the order given (e.g. the kept heads' rows of q_proj, or gate/up rows of the
/// kept MLP channels). \throws rcpu::invalid_argument on an empty, out-of-range or repeated index set.
template <typename Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> take_rows(const Eigen::MatrixBase<Derived>& A,
                                                                                  const std::vector<Index>& idx) {
  detail::require_kept_set(idx, A.rows(), "take_rows: idx");
  return A(idx, Eigen::all);
}

/// Columns `idx` of A, in the order given. \throws as take_rows().
template <typename Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> take_cols(const Eigen::MatrixBase<Derived>& A,
                                                                                  const std::vector<Index>& idx) {
  detail::require_kept_set(idx, A.cols(), "take_cols: idx");
  return A(Eigen::all, idx);
}

/// Entries `idx` of a vector (e.g. a bias of q_proj).
template <typename Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, 1> take_entries(const Eigen::MatrixBase<Derived>& v,
                                                                        const std::vector<Index>& idx) {
  detail::require(v.cols() == 1, "take_entries: v is " + detail::shape(v) + ", expected a column vector");
  detail::require_kept_set(idx, v.rows(), "take_entries: idx");
  return v(idx, 0);
}

}  // namespace rcpu

#endif  // RCPU_SELECTION_HPP
