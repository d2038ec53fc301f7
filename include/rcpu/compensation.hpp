// SPDX-License-Identifier: MIT
#ifndef RCPU_COMPENSATION_HPP
#define RCPU_COMPENSATION_HPP

/// \file compensation.hpp
/// Compensation of a pruned linear layer from its input statistics alone (METHOD.md section 4).
/// Nothing here touches activations: with G the Gram of the input and K the kept columns,
///   A = W G[:,K]            (d_out x k),   M = Y Z^T = A W_K^T   (d_out x d_out),
///   ||Z||^2 = tr(W_K G_KK W_K^T),          ||Y||^2 = tr(W G W^T).
/// A is formed as W_K G_KK + W_D G_DK, which also yields ||Z||^2 and ||Y||^2 for the report at the
/// price of one extra d_out x |D| x |D| product.

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "config.hpp"
#include "detail/checks.hpp"
#include "error.hpp"
#include "procrustes.hpp"
#include "report.hpp"
#include "selection.hpp"
#include "statistics.hpp"

namespace rcpu {

/// How the kept columns are updated after pruning.
enum class Compensation {
  none,            ///< W' = W_K
  bias,            ///< FLAP: W' = W_K, b' = b + W_D mu_D (restores the mean output)
  rotation,        ///< RCPU: W' = Q W_K, Q = U V^T from M = Y Z^T = U S V^T
  rotation_scale,  ///< RCPU: W' = s Q W_K, s = tr(S) / (||Z||_F^2 + epsilon)
  rotation_bias,   ///< ours: W' = Q W_K, then b' = b + W mu - W' mu_K (rotation, then FLAP's mean correction)
  least_squares,   ///< ridge to zero: W' = W G[:,K] (G_KK + lambda I)^-1
  proximal_ridge   ///< the paper's LS(lambda): W' = (W G[:,K] + lambda W_K)(G_KK + lambda I)^-1
};

inline const char* to_string(Compensation c) {
  switch (c) {
    case Compensation::none: return "none";
    case Compensation::bias: return "bias";
    case Compensation::rotation: return "rotation";
    case Compensation::rotation_scale: return "rotation_scale";
    case Compensation::rotation_bias: return "rotation_bias";
    case Compensation::least_squares: return "least_squares";
    case Compensation::proximal_ridge: return "proximal_ridge";
  }
  return "unknown";
}

/// Parses the names printed by to_string(Compensation). \throws rcpu::invalid_argument if unknown.
inline Compensation compensation_from_string(const std::string& name) {
  for (Compensation c : {Compensation::none, Compensation::bias, Compensation::rotation, Compensation::rotation_scale,
                         Compensation::rotation_bias, Compensation::least_squares, Compensation::proximal_ridge})
    if (name == to_string(c)) return c;
  detail::fail("unknown compensation '" + name +
               "' (none, bias, rotation, rotation_scale, rotation_bias, least_squares, proximal_ridge)");
}

/// Whether a compensation needs the full Gram (all but none and bias do).
inline bool needs_gram(Compensation c) { return c != Compensation::none && c != Compensation::bias; }

struct CompensationOptions {
  /// Ridge strength for least_squares and proximal_ridge, added to G_KK (the sum over tokens, not the
  /// mean: it scales with the token count). The RCPU authors' ridge baseline uses 1e-4.
  double lambda = 1e-4;
  /// Added to ||Z||_F^2 in the denominator of the scale (the RCPU authors add 1e-6).
  double scale_epsilon = 0.0;
  /// SVD route and the det fix of the rotation.
  ProcrustesOptions procrustes;
  /// Also compute the token inner-product distortion in the report (costs d_out^2 (k + d_in) flops).
  bool geometry = false;
};

/// A compensated layer: weight over the kept columns, bias, and what was used to get there.
template <typename Scalar>
struct Compensated {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  Matrix weight;                    ///< d_out x k, columns in the order of the kept set
  Vector bias;                      ///< d_out, or empty when the layer had none and the method adds none
  Matrix rotation;                  ///< Q (d_out x d_out) for rotation-based methods, else empty
  double scale = 1.0;               ///< s for rotation_scale, else 1
  Eigen::VectorXd singular_values;  ///< of M, for rotation-based methods, else empty
  LayerReport report;               ///< errors before/after on the calibration statistics

  bool has_bias() const { return bias.size() > 0; }
};

namespace detail {

// The statistics as double, without copying the Gram when it is already double.
class StatsView {
 public:
  template <typename S, typename A>
  explicit StatsView(const Statistics<S, A>& st) {
    require(st.tokens() > 0, "compensate: the statistics hold no tokens (channels = " +
                                 std::to_string(st.channels()) + ")");
    n = double(st.tokens());
    sum = st.sum().template cast<double>();
    mean = st.mean().template cast<double>();
    if (st.has_gram()) {
      if constexpr (std::is_same<A, double>::value) {
        gram = &st.gram();
      } else {
        m_copy = st.gram().template cast<double>();
        gram = &m_copy;
      }
    }
  }
  StatsView(const StatsView&) = delete;
  StatsView& operator=(const StatsView&) = delete;

  double n = 0;
  Eigen::VectorXd sum, mean;
  const Eigen::MatrixXd* gram = nullptr;

 private:
  Eigen::MatrixXd m_copy;
};

// Everything about the dense layer and the kept set that the compensations and the report share.
struct LayerSystem {
  const Eigen::MatrixXd& W;
  const Eigen::VectorXd& b0;  // the original bias, zeros when the layer has none
  const StatsView& st;
  const std::vector<Index>& K;
  std::vector<Index> D;
  Eigen::MatrixXd WK, WD, GKK, P, A;  // P = W_K G_KK, A = W G[:,K]
  Eigen::VectorXd Ws, sK, muK;        // W s, s_K, mu_K
  double zz = 0, yy = 0;              // ||W_K X_K||^2, ||W X||^2 (no bias)
  double YY = 0;                      // ||W X + b 1^T||^2
  Eigen::MatrixXd YYt;                // (W X + b)(W X + b)^T, geometry only

  LayerSystem(const Eigen::MatrixXd& W_, const Eigen::VectorXd& b_, const StatsView& st_,
              const std::vector<Index>& K_, bool products, bool geometry)
      : W(W_), b0(b_), st(st_), K(K_), D(complement(K_, W_.cols())) {
    WK = W(Eigen::all, K);
    if (!D.empty()) WD = W(Eigen::all, D);
    Ws.noalias() = W * st.sum;
    sK = st.sum(K);
    muK = st.mean(K);
    if (!products) return;
    const Eigen::MatrixXd& G = *st.gram;
    GKK = G(K, K);
    P.noalias() = WK * GKK;
    A = P;
    zz = P.cwiseProduct(WK).sum();
    yy = zz;
    Eigen::MatrixXd WG_D;  // W G[:,D], geometry only
    if (!D.empty()) {
      const Eigen::MatrixXd GDK = G(D, K);
      const Eigen::MatrixXd R = WD * GDK;
      A += R;
      const Eigen::MatrixXd WDGDD = WD * Eigen::MatrixXd(G(D, D));
      yy += 2.0 * R.cwiseProduct(WK).sum() + WDGDD.cwiseProduct(WD).sum();
      if (geometry) WG_D = WK * GDK.transpose() + WDGDD;
    }
    YY = yy + 2.0 * b0.dot(Ws) + st.n * b0.squaredNorm();
    if (geometry) {
      YYt.noalias() = A * WK.transpose();
      if (!D.empty()) YYt.noalias() += WG_D * WD.transpose();
      YYt += Ws * b0.transpose() + b0 * Ws.transpose() + st.n * b0 * b0.transpose();
    }
  }

  // Compares a candidate (Wp, bp) with the dense layer. WpG = Wp G_KK when known (geometry), and
  // wgw = tr(Wp G_KK Wp^T).
  OutputComparison compare(const Eigen::MatrixXd& Wp, const Eigen::VectorXd& bp, double wgw,
                           const Eigen::MatrixXd* WpG) const {
    OutputComparison c;
    const Eigen::VectorXd Wps = Wp * sK;
    const double n = st.n;
    const double YpYp = wgw + 2.0 * bp.dot(Wps) + n * bp.squaredNorm();
    const double cross = Wp.cwiseProduct(A).sum() + bp.dot(Ws) + b0.dot(Wps) + n * b0.dot(bp);
    const double err2 = std::max(0.0, YY + YpYp - 2.0 * cross);
    c.relative_error = std::sqrt(err2 / YY);
    c.norm_ratio = std::sqrt(YpYp / YY);
    c.cosine = cross / std::sqrt(YY * YpYp);
    if (WpG != nullptr && YYt.size() > 0) {
      const Eigen::MatrixXd YYpt =
          A * Wp.transpose() + Ws * bp.transpose() + b0 * Wps.transpose() + n * b0 * bp.transpose();
      const Eigen::MatrixXd YpYpt =
          *WpG * Wp.transpose() + Wps * bp.transpose() + bp * Wps.transpose() + n * bp * bp.transpose();
      const double a = YYt.squaredNorm(), x = YYpt.squaredNorm(), y = YpYpt.squaredNorm();
      c.inner_product_distortion = std::sqrt(std::max(0.0, a - 2.0 * x + y) / a);
    }
    return c;
  }
};

inline Compensated<double> compensate_impl(const Eigen::MatrixXd& W, const Eigen::VectorXd& b, bool has_bias,
                                           const StatsView& st, const std::vector<Index>& K, Compensation method,
                                           const CompensationOptions& opt) {
  require(std::isfinite(opt.lambda) && opt.lambda >= 0,
          "compensate: lambda = " + std::to_string(opt.lambda) + " must be finite and >= 0");
  require(std::isfinite(opt.scale_epsilon) && opt.scale_epsilon >= 0,
          "compensate: scale_epsilon = " + std::to_string(opt.scale_epsilon) + " must be finite and >= 0");
  const bool have_gram = st.gram != nullptr;
  require(have_gram || !needs_gram(method), std::string("compensate: '") + to_string(method) +
                                                "' needs the Gram, but the statistics were built with GramMode::diagonal");
  const bool geometry = opt.geometry && have_gram;
  const Eigen::VectorXd b0 = has_bias ? b : Eigen::VectorXd::Zero(W.rows());
  const LayerSystem sys(W, b0, st, K, have_gram, geometry);

  Compensated<double> out;
  out.weight = sys.WK;
  if (has_bias) out.bias = b0;
  LayerReport& rep = out.report;
  rep.tokens = Index(st.n);
  rep.rows = W.rows();
  rep.columns = W.cols();
  rep.kept_columns = Index(K.size());

  double wgw = sys.zz;  // tr(W' G_KK W'^T) of the result
  switch (method) {
    case Compensation::none: break;
    case Compensation::bias:
      out.bias = b0;
      if (!sys.D.empty()) out.bias.noalias() += sys.WD * st.mean(sys.D);
      break;
    case Compensation::rotation:
    case Compensation::rotation_scale:
    case Compensation::rotation_bias: {
      const Eigen::MatrixXd M = sys.A * sys.WK.transpose();
      Procrustes<double> pr(M, opt.procrustes);
      rep.info = pr.info();
      if (pr.info() != Info::success) break;
      out.rotation = pr.rotation();
      out.singular_values = pr.singular_values();
      rep.rank_m = pr.rank();
      rep.condition_m = pr.condition();
      rep.reflection_fixed = pr.reflection_fixed();
      out.weight.noalias() = out.rotation * sys.WK;
      if (method == Compensation::rotation_scale) {
        out.scale = pr.scale(sys.zz, opt.scale_epsilon);
        out.weight *= out.scale;
        wgw = out.scale * out.scale * sys.zz;
      }
      if (method == Compensation::rotation_bias) out.bias = b0 + W * st.mean - out.weight * sys.muK;
      rep.scale = out.scale;
      break;
    }
    case Compensation::least_squares:
    case Compensation::proximal_ridge: {
      const double lam = opt.lambda;
      Eigen::MatrixXd H = sys.GKK;
      H.diagonal().array() += lam;
      Eigen::MatrixXd rhs = sys.A.transpose();  // (W G[:,K])^T, k x d_out
      if (method == Compensation::proximal_ridge) rhs += lam * sys.WK.transpose();
      Eigen::LLT<Eigen::MatrixXd> llt(H);
      if (llt.info() == Eigen::Success) {
        out.weight = llt.solve(rhs).transpose();
      } else {
        // Singular G_KK + lambda I (e.g. lambda = 0 and dead channels): LDLT with its pseudo-inverse
        // treatment of zero pivots, and say so.
        Eigen::LDLT<Eigen::MatrixXd> ldlt(H);
        out.weight = ldlt.solve(rhs).transpose();
        rep.info = Info::numerical_issue;
      }
      // W' (G_KK + lam I) = rhs^T  =>  W' G_KK = rhs^T - lam W'
      wgw = (rhs.transpose() - lam * out.weight).cwiseProduct(out.weight).sum();
      break;
    }
  }
  if (rep.info != Info::success && rep.info != Info::numerical_issue) return out;
  if (!out.weight.allFinite() || (out.bias.size() && !out.bias.allFinite())) rep.info = Info::numerical_issue;

  if (have_gram) {
    const Eigen::VectorXd& bp = out.bias.size() ? out.bias : b0;
    Eigen::MatrixXd WpG;
    if (geometry) WpG.noalias() = out.weight * sys.GKK;
    rep.before = sys.compare(sys.WK, b0, sys.zz, geometry ? &sys.P : nullptr);
    rep.after = sys.compare(out.weight, bp, wgw, geometry ? &WpG : nullptr);
  }
  return out;
}

template <typename Scalar>
Compensated<Scalar> cast_result(Compensated<double>&& r) {
  if constexpr (std::is_same<Scalar, double>::value) {
    return std::move(r);
  } else {
    Compensated<Scalar> out;
    out.weight = r.weight.cast<Scalar>();
    out.bias = r.bias.cast<Scalar>();
    out.rotation = r.rotation.cast<Scalar>();
    out.scale = r.scale;
    out.singular_values = std::move(r.singular_values);
    out.report = r.report;
    return out;
  }
}

template <typename DerivedW, typename S, typename A>
void check_layer(const Eigen::MatrixBase<DerivedW>& W, const Statistics<S, A>& stats, const char* fn) {
  RCPU_STATIC_ASSERT_SCALAR(typename DerivedW::Scalar);
  require(W.rows() >= 1 && W.cols() >= 1, std::string(fn) + ": W is " + shape(W) + ", must be non-empty");
  require(stats.channels() == W.cols(), std::string(fn) + ": W is " + shape(W) + " but stats has " +
                                            std::to_string(stats.channels()) + " channels (need W.cols())");
  require(stats.tokens() > 0, std::string(fn) + ": the statistics hold no tokens (channels = " +
                                  std::to_string(stats.channels()) + ")");
  require_finite(W, (std::string(fn) + ": W").c_str());
}

template <typename DerivedW, typename DerivedB>
void check_bias(const Eigen::MatrixBase<DerivedW>& W, const Eigen::MatrixBase<DerivedB>& b, const char* fn) {
  require(b.cols() == 1 && b.rows() == W.rows(), std::string(fn) + ": bias is " + shape(b) + " but W is " + shape(W) +
                                                     " (need a " + shape(W.rows(), 1) + " vector)");
  require_finite(b, (std::string(fn) + ": bias").c_str());
}

}  // namespace detail

/// Compensates a layer y = W x + b pruned to the input columns `kept`, from statistics alone.
/// \param W       weights, d_out x d_in (float or double; all arithmetic is in double)
/// \param bias    bias, d_out
/// \param stats   statistics of the layer's input on calibration tokens (full Gram unless the method
///                is none or bias)
/// \param kept    kept input columns (any order; the result's columns follow it)
/// \param method  the compensation
/// \return weight (d_out x k), bias, Q and s where used, and the report.
/// \throws rcpu::invalid_argument on bad shapes, NaN/Inf, an invalid kept set, empty statistics, or
///         a Gram-based method on diagonal-only statistics. Numerical trouble goes in report.info.
template <typename DerivedW, typename DerivedB, typename S, typename A>
Compensated<typename DerivedW::Scalar> compensate(const Eigen::MatrixBase<DerivedW>& W,
                                                  const Eigen::MatrixBase<DerivedB>& bias,
                                                  const Statistics<S, A>& stats, const std::vector<Index>& kept,
                                                  Compensation method, const CompensationOptions& options = {}) {
  detail::check_layer(W, stats, "compensate");
  detail::check_bias(W, bias, "compensate");
  detail::require_kept_set(kept, W.cols(), "compensate: kept");
  const detail::StatsView st(stats);
  return detail::cast_result<typename DerivedW::Scalar>(detail::compensate_impl(
      W.template cast<double>(), bias.template cast<double>(), true, st, kept, method, options));
}

/// As above, for a layer without bias (a bias appears in the result only for bias and rotation_bias).
template <typename DerivedW, typename S, typename A>
Compensated<typename DerivedW::Scalar> compensate(const Eigen::MatrixBase<DerivedW>& W, const Statistics<S, A>& stats,
                                                  const std::vector<Index>& kept, Compensation method,
                                                  const CompensationOptions& options = {}) {
  detail::check_layer(W, stats, "compensate");
  detail::require_kept_set(kept, W.cols(), "compensate: kept");
  const detail::StatsView st(stats);
  return detail::cast_result<typename DerivedW::Scalar>(detail::compensate_impl(
      W.template cast<double>(), Eigen::VectorXd(), false, st, kept, method, options));
}

}  // namespace rcpu

#endif  // RCPU_COMPENSATION_HPP
