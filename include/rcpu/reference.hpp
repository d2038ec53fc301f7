// SPDX-License-Identifier: MIT
#ifndef RCPU_REFERENCE_HPP
#define RCPU_REFERENCE_HPP

/// \file reference.hpp
/// The textbook path from raw activations: forms Y = W X and Z = W_K X_K explicitly and computes every
/// compensation and every report figure from them. It stores all activations, so it is for tests and
/// small problems only; it exists to show that the statistics path (compensation.hpp) gives the same
/// answers without them.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "compensation.hpp"
#include "detail/checks.hpp"
#include "procrustes.hpp"
#include "selection.hpp"

namespace rcpu {
namespace reference {

// Both functions are templates on nothing (call them as plain functions): a plain inline function's body
// would be instantiated in every translation unit that includes rcpu/rcpu.hpp (about 20 s of g++ each);
// a template's only where it is called.

/// Compares dense outputs Y with Y' (d_out x N each), exactly as OutputComparison defines it.
template <int = 0>
inline OutputComparison compare_outputs(const Eigen::MatrixXd& Y, const Eigen::MatrixXd& Yp) {
  OutputComparison c;
  c.relative_error = (Y - Yp).norm() / Y.norm();
  c.norm_ratio = Yp.norm() / Y.norm();
  c.cosine = Y.cwiseProduct(Yp).sum() / (Y.norm() * Yp.norm());
  const Eigen::MatrixXd gY = Y.transpose() * Y, gYp = Yp.transpose() * Yp;  // N x N token inner products
  c.inner_product_distortion = (gY - gYp).norm() / gY.norm();
  return c;
}

/// compensate() computed from raw activations X (N x d_in, rows = tokens). `bias` may be empty (no
/// bias). Same result type and conventions; the report's figures come from the explicit outputs.
template <int = 0>
inline Compensated<double> compensate(const Eigen::MatrixXd& W, const Eigen::VectorXd& bias, const Eigen::MatrixXd& X,
                                      const std::vector<Index>& kept, Compensation method,
                                      const CompensationOptions& opt = {}) {
  detail::require(X.cols() == W.cols() && X.rows() >= 1,
                  "reference::compensate: X is " + detail::shape(X) + " but W is " + detail::shape(W));
  detail::require(bias.size() == 0 || bias.size() == W.rows(), "reference::compensate: bias has the wrong length");
  detail::require_kept_set(kept, W.cols(), "reference::compensate: kept");
  const bool has_bias = bias.size() > 0;
  const Eigen::VectorXd b0 = has_bias ? bias : Eigen::VectorXd::Zero(W.rows());
  const std::vector<Index> D = complement(kept, W.cols());
  const Eigen::MatrixXd WK = W(Eigen::all, kept);
  const Eigen::MatrixXd XK = X(Eigen::all, kept).transpose();  // k x N
  const Eigen::MatrixXd Y = W * X.transpose();                 // d_out x N, no bias
  const Eigen::MatrixXd Z = WK * XK;
  const Eigen::VectorXd mu = X.colwise().mean().transpose();

  Compensated<double> out;
  out.weight = WK;
  if (has_bias) out.bias = b0;
  switch (method) {
    case Compensation::none: break;
    case Compensation::bias: out.bias = b0 + (W * mu - WK * mu(kept)); break;
    case Compensation::rotation:
    case Compensation::rotation_scale:
    case Compensation::rotation_bias: {
      Procrustes<double> pr;
      pr.compute(Y, Z, opt.procrustes);
      out.rotation = pr.rotation();
      out.singular_values = pr.singular_values();
      out.weight = out.rotation * WK;
      if (method == Compensation::rotation_scale) {
        // s minimises ||Y - s Q Z||: <Y, Q Z> / ||Z||^2, written out rather than via tr(S).
        out.scale = (Y.cwiseProduct(out.rotation * Z)).sum() / (Z.squaredNorm() + opt.scale_epsilon);
        out.weight *= out.scale;
      }
      if (method == Compensation::rotation_bias) out.bias = b0 + W * mu - out.weight * mu(kept);
      out.report.scale = out.scale;
      break;
    }
    case Compensation::least_squares:
    case Compensation::proximal_ridge: {
      // argmin ||Y - W' X_K||^2 + lambda ||W' - W0||^2 with W0 = 0 or W_K, by the normal equations.
      const Eigen::MatrixXd W0 = method == Compensation::proximal_ridge ? WK : Eigen::MatrixXd::Zero(WK.rows(), WK.cols());
      Eigen::MatrixXd H = XK * XK.transpose();
      H.diagonal().array() += opt.lambda;
      const Eigen::MatrixXd rhs = (Y * XK.transpose() + opt.lambda * W0).transpose();
      out.weight = H.ldlt().solve(rhs).transpose();
      break;
    }
    case Compensation::rotation_ridge: {
      // argmin ||Y - W' X_K||^2 + lambda ||W' - Q W_K||^2, Q of the rotation on the explicit Y and Z.
      Procrustes<double> pr;
      pr.compute(Y, Z, opt.procrustes);
      out.rotation = pr.rotation();
      out.singular_values = pr.singular_values();
      Eigen::MatrixXd H = XK * XK.transpose();
      H.diagonal().array() += opt.lambda;
      const Eigen::MatrixXd rhs = (Y * XK.transpose() + opt.lambda * out.rotation * WK).transpose();
      out.weight = H.ldlt().solve(rhs).transpose();
      break;
    }
  }
  const Eigen::MatrixXd ones = Eigen::RowVectorXd::Ones(X.rows());
  const Eigen::MatrixXd Yb = Y + b0 * ones;
  const Eigen::VectorXd bp = out.bias.size() ? out.bias : b0;
  out.report.tokens = X.rows();
  out.report.rows = W.rows();
  out.report.columns = W.cols();
  out.report.kept_columns = Index(kept.size());
  out.report.before = compare_outputs(Yb, Z + b0 * ones);
  out.report.after = compare_outputs(Yb, out.weight * XK + bp * ones);
  return out;
}

}  // namespace reference
}  // namespace rcpu

#endif  // RCPU_REFERENCE_HPP
