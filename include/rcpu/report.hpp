// SPDX-License-Identifier: MIT
#ifndef RCPU_REPORT_HPP
#define RCPU_REPORT_HPP

/// \file report.hpp
/// What a compensation did to a layer's outputs on the calibration tokens, computed from the Gram
/// alone (METHOD.md section 4): for any replacement (W', b') of (W, b) restricted to the kept columns,
///   ||Y'||^2  = tr(W' G_KK W'^T) + 2 b'^T W' s_K + n ||b'||^2
///   <Y, Y'>   = tr(W' G[K,:] W^T) + b'^T W s + b^T W' s_K + n b^T b'
///   ||Y - Y'||^2 = ||Y||^2 + ||Y'||^2 - 2 <Y, Y'>
/// with s = sum_t x_t. The token inner-product distortion uses ||Y^T Y||_F = ||Y Y^T||_F and
/// ||Y^T Y - Y'^T Y'||_F^2 = ||Y Y^T||_F^2 - 2 ||Y Y'^T||_F^2 + ||Y' Y'^T||_F^2, which only needs
/// d_out x d_out matrices.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <limits>
#include <ostream>

#include "config.hpp"
#include "error.hpp"

namespace rcpu {

/// How a pruned layer's outputs Y' (tokens as columns, bias included) compare with the dense Y.
struct OutputComparison {
  static constexpr double not_computed = std::numeric_limits<double>::quiet_NaN();
  double relative_error = not_computed;  ///< ||Y - Y'||_F / ||Y||_F
  double norm_ratio = not_computed;      ///< ||Y'||_F / ||Y||_F: how far the output energy moved
  double cosine = not_computed;          ///< <Y, Y'>_F / (||Y||_F ||Y'||_F)
  /// ||Y^T Y - Y'^T Y'||_F / ||Y^T Y||_F: how far the inner products between token outputs moved.
  /// Computed only with CompensationOptions::geometry (it costs d_out^2 (k + d_in) flops).
  double inner_product_distortion = not_computed;
};

/// The report of one compensated (or merely pruned) layer, on the calibration statistics.
struct LayerReport {
  Index tokens = 0;        ///< calibration tokens behind the statistics
  Index rows = 0;          ///< d_out
  Index columns = 0;       ///< d_in before pruning
  Index kept_columns = 0;  ///< k
  OutputComparison before;  ///< plain pruning: W_K and the original bias
  OutputComparison after;   ///< with the compensation
  Info info = Info::success;  ///< numerical status of the compensation
  /// The calibration data do not determine the compensated weight: fewer tokens than kept columns
  /// (n < k), so G_KK is singular and other weights (another SVD route, another solver) fit the
  /// calibration tokens exactly as well while differing on new ones. Calibrate on more tokens.
  bool underdetermined = false;
  // Rotation-based compensations only (NaN / -1 otherwise):
  double scale = 1.0;                                            ///< s used (1 without scale)
  Index rank_m = -1;                                             ///< numerical rank of M = Y Z^T
  double condition_m = std::numeric_limits<double>::quiet_NaN();  ///< sigma_max / sigma_min of M
  bool reflection_fixed = false;                                 ///< det fix applied
  /// Wall time of the Procrustes solve: forming and decomposing M, or the QRs and the reduced problem
  /// of the product routes, and Q W_K (0 without one).
  double seconds_procrustes = 0;
};

inline std::ostream& operator<<(std::ostream& os, const LayerReport& r) {
  os << "rcpu layer report: " << r.rows << "x" << r.columns << " -> " << r.rows << "x" << r.kept_columns << " on "
     << r.tokens << " tokens, info " << to_string(r.info) << "\n"
     << "  relative error  before " << r.before.relative_error << "  after " << r.after.relative_error << "\n"
     << "  norm ratio      before " << r.before.norm_ratio << "  after " << r.after.norm_ratio << "\n"
     << "  cosine          before " << r.before.cosine << "  after " << r.after.cosine << "\n";
  if (!std::isnan(r.after.inner_product_distortion))
    os << "  inner-product distortion before " << r.before.inner_product_distortion << "  after "
       << r.after.inner_product_distortion << "\n";
  if (r.underdetermined)
    os << "  warning: underdetermined: " << r.tokens << " calibration tokens < " << r.kept_columns
       << " kept columns, the compensated weight is not unique\n";
  if (r.rank_m >= 0)
    os << "  M: rank " << r.rank_m << ", condition " << r.condition_m << ", scale " << r.scale
       << (r.reflection_fixed ? ", reflection fixed" : "") << "\n";
  return os;
}

}  // namespace rcpu

#endif  // RCPU_REPORT_HPP
