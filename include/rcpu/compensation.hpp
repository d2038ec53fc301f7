// SPDX-License-Identifier: MIT
#ifndef RCPU_COMPENSATION_HPP
#define RCPU_COMPENSATION_HPP

/// \file compensation.hpp
/// Compensation of a pruned linear layer from its input statistics alone (METHOD.md section 4).
/// Nothing here touches activations: with G the Gram of the input and K the kept columns,
///   A = W G[:,K]            (d_out x k),   M = Y Z^T = A W_K^T   (d_out x d_out),
///   ||Z||^2 = tr(W_K G_KK W_K^T),          ||Y||^2 = tr(W G W^T).
/// A is formed as W_K G_KK + W_D G_DK panel by panel, straight from G's columns (no copy of G's
/// blocks), which also yields ||Z||^2 and ||Y||^2 for the report at the price of one d_out |D|^2 rank
/// update. Products go through CBLAS and the Cholesky through LAPACKE when RCPU_USE_BLAS is on.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "config.hpp"
#include "detail/blas.hpp"
#include "detail/checks.hpp"
#include "detail/lapack.hpp"
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
  proximal_ridge,  ///< the paper's LS(lambda): W' = (W G[:,K] + lambda W_K)(G_KK + lambda I)^-1
  rotation_ridge   ///< ours: the ridge pulled toward the rotation, W' = (W G[:,K] + lambda Q W_K)(G_KK + lambda I)^-1
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
    case Compensation::rotation_ridge: return "rotation_ridge";
  }
  return "unknown";
}

/// Parses the names printed by to_string(Compensation). \throws rcpu::invalid_argument if unknown.
inline Compensation compensation_from_string(const std::string& name) {
  for (Compensation c : {Compensation::none, Compensation::bias, Compensation::rotation, Compensation::rotation_scale,
                         Compensation::rotation_bias, Compensation::least_squares, Compensation::proximal_ridge,
                         Compensation::rotation_ridge})
    if (name == to_string(c)) return c;
  detail::fail("unknown compensation '" + name +
               "' (none, bias, rotation, rotation_scale, rotation_bias, least_squares, proximal_ridge, rotation_ridge)");
}

/// Whether a compensation needs the full Gram (all but none and bias do).
inline bool needs_gram(Compensation c) { return c != Compensation::none && c != Compensation::bias; }

struct CompensationOptions {
  /// Ridge strength for least_squares, proximal_ridge and rotation_ridge, added to G_KK (the sum over
  /// tokens, not the mean: it scales with the token count). The RCPU authors' ridge baseline uses 1e-4.
  double lambda = 1e-4;
  /// Added to ||Z||_F^2 in the denominator of the scale (the RCPU authors add 1e-6).
  double scale_epsilon = 0.0;
  /// SVD route and the det fix of the rotation.
  ProcrustesOptions procrustes;
  /// Always return the full rotation Q (d_out x d_out) in Compensated::rotation. By default rcpu
  /// solves the smallest problem that determines W' = Q W_K (ProcrustesProduct) and forms no Q: the
  /// k x k problem when fewer columns are kept than W has rows (k < d_out, e.g. o_proj: Q is then
  /// only determined on range(W_K); 0.76x the full route's time at k = 0.8 d_out = 3276), and a
  /// problem of the order of the token count when there are fewer tokens than min(d_out, k) / 2
  /// (M's rank is at most the token count; docs/maths.md). Q is returned anyway when it is formed
  /// (k >= d_out and many tokens). With fewer tokens than kept columns W' is not unique, and the
  /// routes may return different optima (the same calibration error).
  bool full_rotation = false;
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
  Matrix rotation;                  ///< Q (d_out x d_out) for rotation-based methods (rotation_ridge too) when it
                                    ///< was formed (CompensationOptions::full_rotation), else empty
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
// W arrives with its columns permuted to [K, D] (kept in the caller's order, then dropped), so that
// W_K and W_D are blocks of one matrix. With G the Gram:
//   A = W G[:,K] = W_K G_KK + W_D G_DK  (one pass over G's kept columns, no copy of G's blocks)
//   zz = ||W_K X_K||^2 = <W_K G_KK, W_K>,  yy = ||W X||^2 = zz + 2 <W_D G_DK, W_K> + <G_DD, W_D^T W_D>.
struct LayerSystem {
  const Eigen::MatrixXd& Wp;  // [W_K, W_D]
  const Eigen::VectorXd& b0;  // the original bias, zeros when the layer has none
  const StatsView& st;
  const std::vector<Index>& K;
  std::vector<Index> D, perm;  // perm = [K, D]
  Index k = 0, nd = 0;
  Eigen::MatrixXd A;           // W G[:,K]
  Eigen::MatrixXd P;           // W_K G_KK, geometry only
  Eigen::VectorXd Ws, sK, muK;  // W s, s_K, mu_K
  double zz = 0, yy = 0;        // ||W_K X_K||^2, ||W X||^2 (no bias)
  double ak = 0;                // <A, W_K> = tr(W G[:,K] W_K^T)
  double YY = 0;                // ||W X + b 1^T||^2
  Eigen::MatrixXd YYt;          // (W X + b)(W X + b)^T, geometry only

  auto WK() const { return Wp.leftCols(k); }
  auto WD() const { return Wp.rightCols(nd); }

  LayerSystem(const Eigen::MatrixXd& Wp_, const Eigen::VectorXd& b_, const StatsView& st_,
              const std::vector<Index>& K_, bool products, bool geometry)
      : Wp(Wp_), b0(b_), st(st_), K(K_), D(complement(K_, Wp_.cols())) {
    k = Index(K.size());
    nd = Index(D.size());
    perm = K;
    perm.insert(perm.end(), D.begin(), D.end());
    Ws.noalias() = Wp * st.sum(perm);
    sK = st.sum(K);
    muK = st.mean(K);
    if (!products) return;
    const Eigen::MatrixXd& G = *st.gram;
    const Index d_in = Wp.cols(), d_out = Wp.rows();
    A.resize(d_out, k);
    if (geometry) P.resize(d_out, k);
    // Panels of kept columns of G, rows gathered in W's [K, D] order (G's columns are contiguous,
    // so the gather stays in cache); two GEMMs per panel give P and R without forming G_KK or G_DK.
    constexpr Index panel = 256;
    Eigen::MatrixXd Gp;
    for (Index j0 = 0; j0 < k; j0 += panel) {
      const Index jb = std::min(panel, k - j0);
      Gp.resize(d_in, jb);
      for (Index c = 0; c < jb; ++c) {
        const double* g = G.col(K[std::size_t(j0 + c)]).data();
        double* dst = Gp.col(c).data();
        for (Index i = 0; i < d_in; ++i) dst[i] = g[perm[std::size_t(i)]];
      }
      auto Ap = A.middleCols(j0, jb);
      gemm<double>(Op::none, Op::none, 1.0, WK(), Gp.topRows(k), 0.0, Ap);  // W_K G_KK
      zz += Ap.cwiseProduct(WK().middleCols(j0, jb)).sum();
      if (geometry) P.middleCols(j0, jb) = Ap;
      if (nd > 0) gemm<double>(Op::none, Op::none, 1.0, WD(), Gp.bottomRows(nd), 1.0, Ap);  // + W_D G_DK
    }
    ak = A.cwiseProduct(WK()).sum();
    yy = 2.0 * ak - zz;
    if (nd > 0) {
      // <G_DD, W_D^T W_D> from the lower triangles: d_out nd^2 flops instead of 2 d_out nd^2.
      Eigen::MatrixXd S(nd, nd);
      syrk_lower<double>(Op::transpose, 1.0, WD(), 0.0, S);
      double dd = 0;
      for (Index j = 0; j < nd; ++j) {
        const double* g = G.col(D[std::size_t(j)]).data();
        dd += g[D[std::size_t(j)]] * S(j, j);
        for (Index i = j + 1; i < nd; ++i) dd += 2.0 * g[D[std::size_t(i)]] * S(i, j);
      }
      yy += dd;
    }
    YY = yy + 2.0 * b0.dot(Ws) + st.n * b0.squaredNorm();
    if (geometry) {
      // The token inner products need W G W^T in full: copies of G's blocks are fine here (opt-in).
      YYt.noalias() = A * WK().transpose();
      if (nd > 0) {
        const Eigen::MatrixXd WG_D = WK() * Eigen::MatrixXd(G(D, K)).transpose() + WD() * Eigen::MatrixXd(G(D, D));
        YYt.noalias() += WG_D * WD().transpose();
      }
      YYt += Ws * b0.transpose() + b0 * Ws.transpose() + st.n * b0 * b0.transpose();
    }
  }

  // Compares a candidate (Wc, bp) with the dense layer. wgw = tr(Wc G_KK Wc^T), wa = <Wc, A> =
  // tr(Wc G[K,:] W^T), and WcG = Wc G_KK when known (geometry).
  OutputComparison compare(const Eigen::MatrixXd& Wc, const Eigen::VectorXd& bp, double wgw, double wa,
                           const Eigen::MatrixXd* WcG) const {
    OutputComparison c;
    const Eigen::VectorXd Wcs = Wc * sK;
    const double n = st.n;
    const double YpYp = wgw + 2.0 * bp.dot(Wcs) + n * bp.squaredNorm();
    const double cross = wa + bp.dot(Ws) + b0.dot(Wcs) + n * b0.dot(bp);
    const double err2 = std::max(0.0, YY + YpYp - 2.0 * cross);
    c.relative_error = std::sqrt(err2 / YY);
    c.norm_ratio = std::sqrt(YpYp / YY);
    c.cosine = cross / std::sqrt(YY * YpYp);
    if (WcG != nullptr && YYt.size() > 0) {
      const Eigen::MatrixXd YYpt =
          A * Wc.transpose() + Ws * bp.transpose() + b0 * Wcs.transpose() + n * b0 * bp.transpose();
      const Eigen::MatrixXd YpYpt =
          *WcG * Wc.transpose() + Wcs * bp.transpose() + bp * Wcs.transpose() + n * bp * bp.transpose();
      const double a = YYt.squaredNorm(), x = YYpt.squaredNorm(), y = YpYpt.squaredNorm();
      c.inner_product_distortion = std::sqrt(std::max(0.0, a - 2.0 * x + y) / a);
    }
    return c;
  }
};

// W' (G_KK + lambda I) = B for W', in place in B (d_out x k), by Cholesky H = L L^T. False when
// G_KK + lambda I is not positive definite (B is then unchanged). Also returns
// bhb = <W', B> = tr(B H^{-1} B^T) = ||B L^{-T}||_F^2, read between the two triangular solves, so
// that the report does not need a copy of B.
template <int = 0>  // a template: instantiated only where used (see compensate_impl)
inline bool ridge_solve(Eigen::MatrixXd& H, Eigen::MatrixXd& B, double& bhb) {
#if defined(RCPU_HAVE_LAPACKE) && defined(RCPU_HAVE_BLAS)
  if (lapack::cholesky_lower<double>(H) && blas_fits(B.rows(), B.cols(), H.rows())) {
    // B L^{-T} L^{-1}: two triangular solves from the right, no transposed copies.
    const int m = int(B.rows()), n = int(B.cols()), ldh = int(std::max<Index>(1, H.rows())),
              ldb = int(std::max<Index>(1, B.rows()));
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, m, n, 1.0, H.data(), ldh, B.data(), ldb);
    bhb = B.squaredNorm();
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0, H.data(), ldh, B.data(),
                ldb);
    return true;
  }
  return false;
#else
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(H);  // in place: no second k x k matrix
  if (llt.info() != Eigen::Success) return false;
  llt.matrixU().template solveInPlace<Eigen::OnTheRight>(B);
  bhb = B.squaredNorm();
  llt.matrixL().template solveInPlace<Eigen::OnTheRight>(B);
  return true;
#endif
}

// The Procrustes rotation of the layer (rotation, rotation_scale, rotation_bias, rotation_ridge):
// M = Y Z^T = A W_K^T = U S V^T, Q = U V^T, into QWK = Q W_K, with the report's rank, condition and
// det fix. Without full_rotation the product routes run (solve_procrustes_product: the k x k problem
// when k < d_out, the low-rank one when the tokens are few) and full_q says whether pr.q is Q. A is consumed unless keep_a (the geometry
// or the ridge still needs it). False, with the reason in rep.info, when the solve failed.
template <int = 0>  // a template: instantiated only where used (see compensate_impl)
inline bool layer_rotation(LayerSystem& sys, const CompensationOptions& opt, bool keep_a, LayerReport& rep,
                           ProcrustesSolution<double>& pr, Eigen::MatrixXd& QWK, bool& full_q) {
  const Index d_out = sys.Wp.rows(), k = sys.k;
  (void)procrustes_route(opt.procrustes.method, opt.full_rotation ? d_out : std::min(d_out, k));  // first
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.full_rotation) {
    Eigen::MatrixXd M(d_out, d_out);
    gemm<double>(Op::none, Op::transpose, 1.0, sys.A, sys.WK(), 0.0, M);  // M = Y Z^T = A W_K^T
    if (!keep_a) sys.A.resize(0, 0);  // <W', A> = s <Q, M> from here on
    solve_procrustes<double>(M, opt.procrustes, pr);
    M.resize(0, 0);  // peak memory: M is not needed once Q is known
    if (pr.info == Info::success) {
      QWK.resize(d_out, k);
      gemm<double>(Op::none, Op::none, 1.0, pr.q, sys.WK(), 0.0, QWK);
    }
  } else {
    // A = W G[:,K] has rank at most the number of tokens: the bound of the low-rank route.
    const Index tokens = sys.st.n < double(std::numeric_limits<Index>::max()) ? Index(sys.st.n) : 0;
    Eigen::MatrixXd B = keep_a ? Eigen::MatrixXd(sys.A) : std::move(sys.A);
    solve_procrustes_product<double>(B, sys.WK(), opt.procrustes, pr, QWK, tokens);
  }
  full_q = pr.q.rows() == d_out;  // Q itself was formed (full_rotation, or k >= d_out without the low-rank route)
  rep.seconds_procrustes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.info = pr.info;
  if (pr.info != Info::success) return false;
  rep.rank_m = numerical_rank(pr.sigma);
  rep.condition_m = condition_number(pr.sigma);
  rep.reflection_fixed = pr.flipped;
  return true;
}

// The ridge pulled toward a prior P (least_squares: none, P = 0; proximal_ridge: P = W_K;
// rotation_ridge: P = Q W_K), the minimiser of ||Y - W' X_K||^2 + lambda ||W' - P||^2:
//   W' = (A + lambda P)(G_KK + lambda I)^-1,
// into out.weight, with wgw = tr(W' G_KK W'^T) and wa = <W', A> for the report. A becomes the
// right-hand side (peak memory: no copy) unless keep_a (the geometry still needs it).
template <int = 0>  // a template: instantiated only where used (see compensate_impl)
inline void ridge_compensate(LayerSystem& sys, double lam, const Eigen::Ref<const Eigen::MatrixXd>* prior, bool keep_a,
                             Compensated<double>& out, double& wgw, double& wa) {
  const Eigen::MatrixXd& G = *sys.st.gram;
  const std::vector<Index>& K = sys.K;
  const Index k = sys.k;
  Eigen::MatrixXd H(k, k);
  for (Index j = 0; j < k; ++j) {  // lower triangle of G_KK + lambda I
    const double* g = G.col(K[std::size_t(j)]).data();
    for (Index i = j; i < k; ++i) H(i, j) = g[K[std::size_t(i)]];
  }
  H.diagonal().array() += lam;
  // B = A (+ lambda P), the right-hand side, solved in place.
  if (keep_a)
    out.weight = sys.A;
  else
    out.weight = std::move(sys.A);
  if (prior != nullptr) out.weight += lam * *prior;
  double bhb = 0;  // <W', B>
  if (!ridge_solve(H, out.weight, bhb)) {
    // Singular G_KK + lambda I (e.g. lambda = 0 and dead channels): LDLT with its pseudo-inverse
    // treatment of zero pivots, and say so. out.weight still holds B.
    H = G(K, K);
    H.diagonal().array() += lam;
    const Eigen::MatrixXd rhs = out.weight.transpose();
    Eigen::LDLT<Eigen::MatrixXd> ldlt(H);
    out.weight = ldlt.solve(rhs).transpose();
    bhb = out.weight.cwiseProduct(rhs.transpose()).sum();
    out.report.info = Info::numerical_issue;
  }
  // W' (G_KK + lam I) = B = A + lam P, so
  //   <W', A> = <W', B> - lam <W', P>,  tr(W' G_KK W'^T) = <W', B> - lam ||W'||^2.
  wa = bhb - (prior != nullptr ? lam * out.weight.cwiseProduct(*prior).sum() : 0.0);
  wgw = bhb - lam * out.weight.squaredNorm();
}

// A template on nothing: a plain inline function's body is instantiated (all of Procrustes<double>, the
// solvers) in every translation unit that includes this header, about 15 s of g++ per unit; a template's
// only where compensate() is called.
template <int = 0>
inline Compensated<double> compensate_impl(const Eigen::MatrixXd& Wp, const Eigen::VectorXd& b, bool has_bias,
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
  const Eigen::VectorXd b0 = has_bias ? b : Eigen::VectorXd::Zero(Wp.rows());
  LayerSystem sys(Wp, b0, st, K, have_gram, geometry);
  const Index k = sys.k, d_out = Wp.rows();

  Compensated<double> out;
  if (has_bias) out.bias = b0;
  LayerReport& rep = out.report;
  rep.tokens = Index(st.n);
  rep.rows = d_out;
  rep.columns = Wp.cols();
  rep.kept_columns = k;
  rep.underdetermined = needs_gram(method) && st.n < double(k);

  double wgw = sys.zz;  // tr(W' G_KK W'^T) of the result
  double wa = sys.ak;   // <W', A> of the result
  bool weight_set = false;
  switch (method) {
    case Compensation::none: break;
    case Compensation::bias:
      out.bias = b0;
      if (sys.nd > 0) out.bias.noalias() += sys.WD() * st.mean(sys.D);
      break;
    case Compensation::rotation:
    case Compensation::rotation_scale:
    case Compensation::rotation_bias: {
      ProcrustesSolution<double> pr;
      Eigen::MatrixXd QWK;
      bool full_q = false;
      if (!layer_rotation(sys, opt, geometry, rep, pr, QWK, full_q)) break;
      if (method == Compensation::rotation_scale) {
        const double den = sys.zz + opt.scale_epsilon;
        require(std::isfinite(den) && den > 0, "Procrustes::scale: ||Z||^2 + epsilon = " + std::to_string(den) +
                                                   " must be positive and finite");
        out.scale = pr.trace / den;
      }
      if (out.scale != 1.0) QWK *= out.scale;
      out.weight = std::move(QWK);  // s Q W_K
      weight_set = true;
      wgw = out.scale * out.scale * sys.zz;
      wa = out.scale * pr.trace;
      if (full_q) out.rotation = std::move(pr.q);
      out.singular_values = std::move(pr.sigma);
      if (method == Compensation::rotation_bias) out.bias = b0 + Wp * st.mean(sys.perm) - out.weight * sys.muK;
      rep.scale = out.scale;
      break;
    }
    case Compensation::least_squares:
    case Compensation::proximal_ridge: {
      const Eigen::Ref<const Eigen::MatrixXd> WK = sys.WK();
      ridge_compensate(sys, opt.lambda, method == Compensation::proximal_ridge ? &WK : nullptr, geometry, out, wgw, wa);
      weight_set = true;
      break;
    }
    case Compensation::rotation_ridge: {
      // The ridge whose prior is the rotated weight Q W_K (Q of the rotation, same options): A is
      // kept through the Procrustes solve, as the ridge's right-hand side.
      ProcrustesSolution<double> pr;
      Eigen::MatrixXd QWK;
      bool full_q = false;
      if (!layer_rotation(sys, opt, true, rep, pr, QWK, full_q)) break;
      if (full_q) out.rotation = std::move(pr.q);
      out.singular_values = std::move(pr.sigma);
      const Eigen::Ref<const Eigen::MatrixXd> prior = QWK;
      ridge_compensate(sys, opt.lambda, &prior, geometry, out, wgw, wa);
      weight_set = true;
      break;
    }
  }
  if (!weight_set) out.weight = sys.WK();
  if (rep.info != Info::success && rep.info != Info::numerical_issue) return out;
  if (!out.weight.allFinite() || (out.bias.size() && !out.bias.allFinite())) rep.info = Info::numerical_issue;

  if (have_gram) {
    const Eigen::VectorXd& bp = out.bias.size() ? out.bias : b0;
    Eigen::MatrixXd WpG;
    if (geometry) WpG.noalias() = out.weight * Eigen::MatrixXd((*st.gram)(K, K));
    rep.before = sys.compare(sys.WK(), b0, sys.zz, sys.ak, geometry ? &sys.P : nullptr);
    rep.after = sys.compare(out.weight, bp, wgw, wa, geometry ? &WpG : nullptr);
  }
  return out;
}

template <typename Scalar>
Compensated<Scalar> cast_result(Compensated<double>&& r) {
  if constexpr (std::is_same<Scalar, double>::value) {
    return std::move(r);
  } else {
    // Each double matrix is freed as soon as it is converted (peak memory).
    Compensated<Scalar> out;
    out.weight = r.weight.cast<Scalar>();
    r.weight.resize(0, 0);
    out.bias = r.bias.cast<Scalar>();
    out.rotation = r.rotation.cast<Scalar>();
    r.rotation.resize(0, 0);
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

// W as double with its columns in the order [K, D]: one copy that serves as W_K and W_D.
template <typename DerivedW>
Eigen::MatrixXd permuted_weight(const Eigen::MatrixBase<DerivedW>& W, const std::vector<Index>& K) {
  const std::vector<Index> D = complement(K, W.cols());
  Eigen::MatrixXd Wp(W.rows(), W.cols());
  Index c = 0;
  for (Index j : K) Wp.col(c++) = W.col(j).template cast<double>();
  for (Index j : D) Wp.col(c++) = W.col(j).template cast<double>();
  return Wp;
}

// compensate_impl on W permuted to [K, D] in double, whose copy is freed before the result is
// converted to W's scalar (peak memory).
template <typename DerivedW>
Compensated<typename DerivedW::Scalar> compensate_cast(const Eigen::MatrixBase<DerivedW>& W, const Eigen::VectorXd& b,
                                                       bool has_bias, const StatsView& st, const std::vector<Index>& K,
                                                       Compensation method, const CompensationOptions& opt) {
  Eigen::MatrixXd Wp = permuted_weight(W, K);
  Compensated<double> r = compensate_impl(Wp, b, has_bias, st, K, method, opt);
  Wp.resize(0, 0);
  return cast_result<typename DerivedW::Scalar>(std::move(r));
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
  return detail::compensate_cast(W, bias.template cast<double>(), true, detail::StatsView(stats), kept, method, options);
}

/// As above, for a layer without bias (a bias appears in the result only for bias and rotation_bias).
template <typename DerivedW, typename S, typename A>
Compensated<typename DerivedW::Scalar> compensate(const Eigen::MatrixBase<DerivedW>& W, const Statistics<S, A>& stats,
                                                  const std::vector<Index>& kept, Compensation method,
                                                  const CompensationOptions& options = {}) {
  detail::check_layer(W, stats, "compensate");
  detail::require_kept_set(kept, W.cols(), "compensate: kept");
  return detail::compensate_cast(W, Eigen::VectorXd(), false, detail::StatsView(stats), kept, method, options);
}

}  // namespace rcpu

#endif  // RCPU_COMPENSATION_HPP
