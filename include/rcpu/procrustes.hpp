// SPDX-License-Identifier: MIT
#ifndef RCPU_PROCRUSTES_HPP
#define RCPU_PROCRUSTES_HPP

/// \file procrustes.hpp
/// The orthogonal Procrustes problem: max_Q tr(Q^T M) over orthogonal Q, i.e. min_Q ||Y - Q Z||_F
/// for M = Y Z^T. Solution (Schönemann 1966): M = U S V^T, Q = U V^T.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <Eigen/Core>
#include <Eigen/LU>
#ifndef RCPU_NO_EIGEN_SVD
#include <Eigen/SVD>
#endif

#include "config.hpp"
#include "detail/blas.hpp"
#include "detail/checks.hpp"
#include "detail/lapack.hpp"
#include "detail/polar.hpp"
#include "error.hpp"

namespace rcpu {

/// How the Procrustes rotation is computed. Every route gives the same Q (where Q is unique) to the
/// accuracy stated in docs/performance.md; they differ in speed and in what they need.
enum class ProcrustesMethod {
  automatic,     ///< the fastest accurate route available: polar_eig
  bdc_svd,       ///< Eigen's divide-and-conquer SVD, U V^T (slow to compile: ~40 s per scalar type)
  jacobi_svd,    ///< Eigen's two-sided Jacobi SVD: slow, most accurate; for checks on small problems
  lapack_gesdd,  ///< LAPACK's ?gesdd, U V^T (RCPU_USE_LAPACKE; bdc_svd without it): the reference route
  polar_eig,     ///< Q = M (M^T M)^{-1/2} from the eigen-decomposition of M^T M, with the ill-conditioned
                 ///< and null directions solved as a smaller problem of the same kind (the default)
  newton,        ///< Higham's scaled Newton iteration; non-singular M only (else polar_eig is used)
  mixed          ///< polar_eig with the eigen-decomposition in float, refined in double (Ogita-Aishima)
};

inline const char* to_string(ProcrustesMethod m) {
  switch (m) {
    case ProcrustesMethod::automatic: return "automatic";
    case ProcrustesMethod::bdc_svd: return "bdc_svd";
    case ProcrustesMethod::jacobi_svd: return "jacobi_svd";
    case ProcrustesMethod::lapack_gesdd: return "lapack_gesdd";
    case ProcrustesMethod::polar_eig: return "polar_eig";
    case ProcrustesMethod::newton: return "newton";
    case ProcrustesMethod::mixed: return "mixed";
  }
  return "unknown";
}

/// Parses the names printed by to_string(ProcrustesMethod). \throws rcpu::invalid_argument if unknown.
inline ProcrustesMethod procrustes_method_from_string(const std::string& name) {
  for (ProcrustesMethod m : {ProcrustesMethod::automatic, ProcrustesMethod::bdc_svd, ProcrustesMethod::jacobi_svd,
                             ProcrustesMethod::lapack_gesdd, ProcrustesMethod::polar_eig, ProcrustesMethod::newton,
                             ProcrustesMethod::mixed})
    if (name == to_string(m)) return m;
  detail::fail("unknown Procrustes method '" + name +
               "' (automatic, bdc_svd, jacobi_svd, lapack_gesdd, polar_eig, newton, mixed)");
}

struct ProcrustesOptions {
  ProcrustesMethod method = ProcrustesMethod::automatic;
  /// Return a proper rotation (det Q = +1) by flipping the singular pair of the smallest singular
  /// value when det(U V^T) < 0 (Kabsch). Off by default, as in the RCPU authors' code. Meaningless
  /// (but harmless) when M is rank-deficient: Q is then not unique, only Q restricted to M's row space.
  bool proper_rotation = false;
};

namespace detail {

/// Everything a Procrustes solve produces; Procrustes and compensate() move out of it.
template <typename Scalar>
struct ProcrustesSolution {
  DenseMatrix<Scalar> q;
  DenseVector<Scalar> sigma;
  Scalar trace = 0;
  bool flipped = false;
  ProcrustesMethod method = ProcrustesMethod::automatic;
  Info info = Info::not_computed;
  Index order = 0;  // of the square problem solved (d, or k or r + 8 for a product's reduced routes)
};

#ifdef RCPU_HAVE_LAPACKE
template <typename Scalar>
void solve_gesdd(const ConstMatRef<Scalar>& M, PolarFactor<Scalar>& f) {
  DenseMatrix<Scalar> A = M, U, VT;
  if (!lapack::svd(A, f.sigma, U, VT)) return;
  f.q.resize(M.rows(), M.rows());
  gemm<Scalar>(Op::none, Op::none, Scalar(1), U, VT, Scalar(0), f.q);
  f.u_min = U.col(M.rows() - 1);
  f.v_min = VT.row(M.rows() - 1).transpose();
  f.ok = true;
}
#endif

// Eigen's SVDs, kept out of every other route's code path. RCPU_NO_EIGEN_SVD compiles them out:
// about 40 s less per scalar type in every translation unit that solves a Procrustes problem.
template <typename Scalar>
void solve_eigen_svd(const ConstMatRef<Scalar>& M, PolarFactor<Scalar>& f, ProcrustesMethod method) {
#ifdef RCPU_NO_EIGEN_SVD
  (void)M;
  (void)f;
  fail(std::string("Procrustes: method ") + to_string(method) +
       " was compiled out (RCPU_NO_EIGEN_SVD); use automatic, polar_eig or lapack_gesdd");
#else
  auto take = [&](const auto& svd) {
    if (svd.info() != Eigen::Success) return;
    f.sigma = svd.singularValues();
    f.q.noalias() = svd.matrixU() * svd.matrixV().transpose();
    f.u_min = svd.matrixU().col(M.rows() - 1);
    f.v_min = svd.matrixV().col(M.rows() - 1);
    f.ok = true;
  };
  using Matrix = DenseMatrix<Scalar>;
  if (method == ProcrustesMethod::jacobi_svd)
    take(Eigen::JacobiSVD<Matrix>(M, Eigen::ComputeFullU | Eigen::ComputeFullV));
  else
    take(Eigen::BDCSVD<Matrix>(M, Eigen::ComputeFullU | Eigen::ComputeFullV));
#endif
}

template <typename Scalar>
int determinant_sign(const DenseMatrix<Scalar>& q) {
#ifdef RCPU_HAVE_LAPACKE
  return lapack::det_sign(q) < 0 ? -1 : 1;  // q is orthogonal: never singular
#else
  return q.partialPivLu().determinant() < 0 ? -1 : 1;
#endif
}

/// The route `method` resolves to for a d x d M: automatic is polar_eig, or, past the order 32-bit
/// LAPACK handles (RCPU_USE_LAPACKE builds: d > 32764 for polar_eig, 23168 for
/// lapack_gesdd), Eigen's bdc_svd, which has no such
/// limit. \throws rcpu::invalid_argument for a LAPACK route asked for by name past its limit, or an
/// automatic one when the Eigen SVD was compiled out (RCPU_NO_EIGEN_SVD).
inline ProcrustesMethod procrustes_route(ProcrustesMethod method, Index d) {
#ifdef RCPU_HAVE_LAPACKE
  const bool gesdd = method == ProcrustesMethod::lapack_gesdd;
  const bool in_lapack = method != ProcrustesMethod::bdc_svd && method != ProcrustesMethod::jacobi_svd;
  if (in_lapack && d > lapack::max_order(gesdd)) {
#ifndef RCPU_NO_EIGEN_SVD
    if (method == ProcrustesMethod::automatic) return ProcrustesMethod::bdc_svd;
#endif
    fail("Procrustes: M is " + shape(d, d) + ", past the order " + std::to_string(lapack::max_order(gesdd)) +
         " that the " + to_string(method == ProcrustesMethod::automatic ? ProcrustesMethod::polar_eig : method) +
         " route handles in 32-bit LAPACK integers; use ProcrustesMethod::bdc_svd (Eigen, no limit) or build "
         "without the LAPACK fast path (RCPU_NO_BLAS)");
  }
#else
  (void)d;  // pure Eigen: no size limit
#endif
  return method == ProcrustesMethod::automatic ? ProcrustesMethod::polar_eig : method;
}

/// Solves max tr(Q^T M) with the route asked for (see ProcrustesMethod); M is square and finite.
template <typename Scalar>
void solve_procrustes(const ConstMatRef<Scalar>& M, const ProcrustesOptions& options, ProcrustesSolution<Scalar>& out) {
  PolarFactor<Scalar> f;
  ProcrustesMethod used = procrustes_route(options.method, M.rows());
  switch (used) {
    case ProcrustesMethod::automatic:  // resolved above
    case ProcrustesMethod::polar_eig:
      polar_eig<Scalar>(M, f, Scalar(0), 0);
      break;
    case ProcrustesMethod::newton:
      if (!polar_newton<Scalar>(M, f)) {
        used = ProcrustesMethod::polar_eig;  // singular M: Newton's inverse does not exist
        polar_eig<Scalar>(M, f, Scalar(0), 0);
      }
      break;
    case ProcrustesMethod::mixed:
#ifdef RCPU_HAVE_LAPACKE
      if constexpr (std::is_same<Scalar, double>::value) {
        if (polar_mixed(M, f)) break;
      }
#endif
      // Float (nothing narrower to start from), no LAPACKE (Eigen's float eigen-solver is no faster),
      // or a float start too far off to refine.
      used = ProcrustesMethod::polar_eig;
      polar_eig<Scalar>(M, f, Scalar(0), 0);
      break;
    case ProcrustesMethod::lapack_gesdd:
#ifdef RCPU_HAVE_LAPACKE
      solve_gesdd<Scalar>(M, f);
      break;
#else
      used = ProcrustesMethod::bdc_svd;
      [[fallthrough]];
#endif
    case ProcrustesMethod::bdc_svd:
    case ProcrustesMethod::jacobi_svd:
      solve_eigen_svd<Scalar>(M, f, used);
      break;
  }
  out.method = used;
  out.order = M.rows();
  out.flipped = false;
  out.sigma = std::move(f.sigma);
  if (!f.ok || !f.q.allFinite()) {
    out.info = Info::no_convergence;
    out.q.resize(0, 0);
    out.trace = out.sigma.size() ? out.sigma.sum() : Scalar(0);
    return;
  }
  out.q = std::move(f.q);
  // Rounding can leave the product routes slightly less orthogonal than an SVD; one Newton-Schulz
  // sweep (3 d^3 flops) restores it when a cheap probe says it is needed.
  const Scalar tol = Scalar(8) * std::sqrt(Scalar(M.rows())) * std::numeric_limits<Scalar>::epsilon();
  if (used != ProcrustesMethod::bdc_svd && used != ProcrustesMethod::jacobi_svd && orthogonality_probe(out.q) > tol)
    newton_schulz_step(out.q);
  if (options.proper_rotation && determinant_sign(out.q) < 0) {
    // Kabsch: Q = U diag(1, ..., 1, -1) V^T = U V^T - 2 u_last v_last^T.
    if (f.u_min.size() == 0) {
      f.q = out.q;
      if (!smallest_pair_from_q<Scalar>(M, f)) {
        out.info = Info::no_convergence;
        out.q.resize(0, 0);
        return;
      }
    }
    out.q.noalias() -= Scalar(2) * f.u_min * f.v_min.transpose();
    out.flipped = true;
  }
  out.trace = out.q.cwiseProduct(M).sum();
  out.info = Info::success;
}

/// Numerical rank of M from its decreasing singular values: those above d * eps * sigma_max.
template <typename Scalar>
Index numerical_rank(const DenseVector<Scalar>& sigma) {
  const Scalar tol = Scalar(sigma.size()) * std::numeric_limits<Scalar>::epsilon() * (sigma.size() ? sigma(0) : 0);
  return (sigma.array() > tol).count();
}

/// sigma_max / sigma_min (infinity when sigma_min = 0).
template <typename Scalar>
Scalar condition_number(const DenseVector<Scalar>& sigma) {
  const Scalar smin = sigma(sigma.size() - 1);
  return smin > 0 ? sigma(0) / smin : std::numeric_limits<Scalar>::infinity();
}

/// Extra probes of the low-rank route beyond the rank bound; they also check it.
constexpr Index lowrank_probes = 8;

/// The low-rank route of solve_procrustes_product, for M = A W^T (A, W: d x k) of rank at most r
/// (e.g. A = W G[:,K] with G a Gram of r tokens), with m = r + 8 at most half of min(d, k).
/// M's column space is sketched by m deterministic probes, Y = M Omega = A (W^T Omega), and the bound
/// is checked a posteriori: with rank(M) <= r the last 8 columns of Y add nothing beyond the first r,
/// so the trailing block of Y's R factor is rounding (Halko, Martinsson and Tropp, SIAM Review 2011,
/// section 4.3). Then, with Householder QRs Y = Q_y R_y and W (Q_y^T A)^T = (Q_y^T M)^T = Q_c R_c,
///   M = Q_y L Q_c^T with L = R_c^T (m x m),   Q = H_y diag(P, I) H_c^T,
/// where H_y, H_c are the full orthogonal factors and P the rotation of L (any route): every such Q
/// is optimal (tr(Q^T M) = tr(P^T L)), and Q W costs two reflector applications and products of
/// order d k m instead of d^3. False, with nothing written, when the bound fails the check or the
/// route does not apply (no LAPACKE); true otherwise (out.info says whether the solve succeeded).
template <typename Scalar>
bool solve_procrustes_lowrank(const ConstMatRef<Scalar>& A, const ConstMatRef<Scalar>& W, Index r,
                              const ProcrustesOptions& options, ProcrustesSolution<Scalar>& out,
                              DenseMatrix<Scalar>& QW) {
#ifndef RCPU_HAVE_LAPACKE
  (void)A, (void)W, (void)r, (void)options, (void)out, (void)QW;
  return false;  // Eigen's QR keeps no LAPACK storage to apply; the other routes serve
#else
  const Index d = W.rows(), k = W.cols(), m = r + lowrank_probes;
  if (r < 1 || 2 * m > std::min(d, k)) return false;
  DenseMatrix<Scalar> T(k, m), Y(d, m);
  gemm<Scalar>(Op::transpose, Op::none, Scalar(1), W, spread_matrix<Scalar>(d, m), Scalar(0), T);  // W^T Omega
  gemm<Scalar>(Op::none, Op::none, Scalar(1), A, T, Scalar(0), Y);  // Y = M Omega
  T.resize(0, 0);
  DenseVector<Scalar> tau_y, tau_c;
  if (!lapack::householder_qr(Y, tau_y)) return false;
  {
    const DenseMatrix<Scalar> Ry = Y.topRows(m).template triangularView<Eigen::Upper>();
    const Scalar tol = Scalar(64) * std::sqrt(Scalar(d + k)) * std::numeric_limits<Scalar>::epsilon();
    if (!(Ry.bottomRightCorner(m - r, m - r).norm() <= tol * Ry.norm())) return false;  // rank(M) > r
  }
  DenseMatrix<Scalar> Qy = Y, QtA(m, k), C(d, m);
  if (!lapack::householder_thin_q(Qy, tau_y)) return false;
  gemm<Scalar>(Op::transpose, Op::none, Scalar(1), Qy, A, Scalar(0), QtA);  // Q_y^T A
  Qy.resize(0, 0);
  gemm<Scalar>(Op::none, Op::transpose, Scalar(1), W, QtA, Scalar(0), C);  // (Q_y^T M)^T
  QtA.resize(0, 0);
  if (!lapack::householder_qr(C, tau_c)) return false;
  const DenseMatrix<Scalar> L = C.topRows(m).template triangularView<Eigen::Upper>().transpose();
  ProcrustesOptions inner = options;
  inner.proper_rotation = false;  // the complement of M's range is free: a proper Q always exists
  solve_procrustes<Scalar>(L, inner, out);
  if (out.info != Info::success) {
    QW.resize(0, 0);
    return true;
  }
  DenseVector<Scalar> sigma = DenseVector<Scalar>::Zero(d);
  sigma.head(m) = out.sigma;
  out.sigma = std::move(sigma);
  QW = W;
  if (!(out.sigma(0) > Scalar(0))) return true;  // M zero to rounding: keep W (Q = I)
  lapack::apply_reflectors<Scalar>(C, tau_c, m, 0, QW, true);  // H_c^T W
  DenseMatrix<Scalar> top(m, k);
  gemm<Scalar>(Op::none, Op::none, Scalar(1), out.q, QW.topRows(m), Scalar(0), top);
  QW.topRows(m) = top;                                          // diag(P, I) H_c^T W
  lapack::apply_reflectors<Scalar>(Y, tau_y, m, 0, QW, false);  // H_y diag(P, I) H_c^T W
  out.q.resize(0, 0);
  return true;
#endif
}

/// The rotation of a product, M = A W^T (A, W: d x k), applied to W: QW = Q W. With k < d, M has
/// rank at most k and Q is only determined on range(W), which holds M's row space; the d x d
/// problem then reduces to a k x k one through two Householder QRs, without forming M or Q:
///   W = Q_w R_w,  B = A R_w^T = Q_b R_b,  so M = Q_b R_b Q_w^T,  Q Q_w = Q_b P,  Q W = Q_b P R_w,
/// with P the rotation of R_b (k x k, any route). M's singular values are R_b's and d - k zeros,
/// and tr(Q^T M) = tr(P^T R_b). The det fix never flips: the complement of range(W) is free, so a
/// proper Q with the same Q W always exists. An M that is zero to rounding gives QW = W (Q = I).
/// With k >= d, M is formed and solved as usual. rank_bound > 0 promises rank(M) <= rank_bound
/// (checked): when it is small, the low-rank route above solves a problem of that order instead.
/// A is consumed (it becomes B, then the QR's reflectors). out.q is Q (d x d) when the route formed
/// it (k >= d without the low-rank route), else empty; out.sigma has d entries.
template <typename Scalar>
void solve_procrustes_product(DenseMatrix<Scalar>& A, const ConstMatRef<Scalar>& W, const ProcrustesOptions& options,
                              ProcrustesSolution<Scalar>& out, DenseMatrix<Scalar>& QW, Index rank_bound = 0) {
  const Index d = W.rows(), k = W.cols();
  eigen_assert(A.rows() == d && A.cols() == k);
  auto failed = [&] {
    out.info = Info::no_convergence;
    out.q.resize(0, 0);
    QW.resize(0, 0);
  };
  if (rank_bound > 0 && solve_procrustes_lowrank<Scalar>(A, W, rank_bound, options, out, QW)) {
    A.resize(0, 0);
    return;
  }
  if (k >= d) {
    DenseMatrix<Scalar> M(d, d);
    gemm<Scalar>(Op::none, Op::transpose, Scalar(1), A, W, Scalar(0), M);
    A.resize(0, 0);
    solve_procrustes<Scalar>(M, options, out);
    if (out.info != Info::success) return failed();
    QW.resize(d, k);
    gemm<Scalar>(Op::none, Op::none, Scalar(1), out.q, W, Scalar(0), QW);
    return;
  }
  ProcrustesOptions inner = options;
  inner.proper_rotation = false;
  DenseMatrix<Scalar> Rw(k, k), Rb(k, k);
#ifdef RCPU_HAVE_LAPACKE
  DenseMatrix<Scalar> Fw = W;
  DenseVector<Scalar> tau_w, tau_b;
  if (!lapack::householder_qr(Fw, tau_w)) return failed();
  Rw = Fw.topRows(k).template triangularView<Eigen::Upper>();
  Fw.resize(0, 0);
  trmm_right_upper<Scalar>(Op::transpose, Rw, A);  // B = A R_w^T, in place
  if (!lapack::householder_qr(A, tau_b)) return failed();
  Rb = A.topRows(k).template triangularView<Eigen::Upper>();
#else
  {
    Eigen::HouseholderQR<DenseMatrix<Scalar>> qw(W);
    Rw = qw.matrixQR().topRows(k).template triangularView<Eigen::Upper>();
  }
  trmm_right_upper<Scalar>(Op::transpose, Rw, A);
  Eigen::HouseholderQR<DenseMatrix<Scalar>> qb(A);
  A.resize(0, 0);
  Rb = qb.matrixQR().topRows(k).template triangularView<Eigen::Upper>();
#endif
  solve_procrustes<Scalar>(Rb, inner, out);
  if (out.info != Info::success) return failed();
  DenseVector<Scalar> sigma = DenseVector<Scalar>::Zero(d);
  sigma.head(k) = out.sigma;
  out.sigma = std::move(sigma);
  if (!(out.sigma(0) > Scalar(0))) {  // M zero to rounding: every Q is optimal, keep W
    QW = W;
    out.q.resize(0, 0);
    return;
  }
  QW.setZero(d, k);
  QW.topRows(k) = out.q;
  out.q.resize(0, 0);
  trmm_right_upper<Scalar>(Op::none, Rw, QW.topRows(k));  // P R_w
#ifdef RCPU_HAVE_LAPACKE
  lapack::apply_reflectors<Scalar>(A, tau_b, k, 0, QW, false);  // Q_b [P R_w; 0]
#else
  QW.applyOnTheLeft(qb.householderQ());
#endif
}

// What every CPU Procrustes solver reports about M (Procrustes, ProcrustesProduct): its singular
// values, the optimum, the route, the outcome. Derived::class_name names the class in messages.
template <typename Scalar, typename Derived>
class ProcrustesReport {
 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  Info info() const { return m_info; }

  /// The route that produced the result: options.method, with automatic resolved, and the
  /// fallbacks applied (newton on a singular M and mixed in float give polar_eig; lapack_gesdd
  /// without LAPACKE gives bdc_svd).
  ProcrustesMethod method() const {
    require_computed("method");
    return m_method;
  }
  /// Singular values of M, decreasing.
  const Vector& singular_values() const {
    require_computed("singular_values");
    return m_sigma;
  }
  /// The optimum tr(Q^T M) (computed as such): the sum of the singular values, minus twice the
  /// smallest when the reflection was fixed.
  Scalar trace() const {
    require_computed("trace");
    return m_trace;
  }
  /// Numerical rank of M: singular values above max(d * eps * sigma_max, tiny).
  Index rank() const {
    require_computed("rank");
    return numerical_rank(m_sigma);
  }
  /// sigma_max / sigma_min of M (infinity when M is singular).
  Scalar condition() const {
    require_computed("condition");
    return condition_number(m_sigma);
  }

 protected:
  void require_computed(const char* what) const {
    require(m_info != Info::not_computed, std::string(Derived::class_name) + "::" + what + ": compute() has not been called");
  }
  // Moves the shared part out of a solution.
  void take_report(ProcrustesSolution<Scalar>& sol) {
    m_sigma = std::move(sol.sigma);
    m_trace = sol.trace;
    m_method = sol.method;
    m_info = sol.info;
  }

  Vector m_sigma;
  Scalar m_trace = 0;
  ProcrustesMethod m_method = ProcrustesMethod::automatic;
  Info m_info = Info::not_computed;
};

}  // namespace detail

/// Solver of the orthogonal Procrustes problem, in the style of Eigen's decompositions:
/// construct or compute(), check info(), read rotation(), singular_values(), trace(), scale().
///
/// Rank-deficient M (e.g. o_proj with k kept columns < d_out) is fine: Q is then not unique, but Q
/// applied to any vector in M's row space is, which is all the compensation W_K <- Q W_K uses.
template <typename Scalar>
class Procrustes : public detail::ProcrustesReport<Scalar, Procrustes<Scalar>> {
  RCPU_STATIC_ASSERT_SCALAR(Scalar);
  using Base = detail::ProcrustesReport<Scalar, Procrustes<Scalar>>;
  friend Base;
  static constexpr const char* class_name = "Procrustes";
  using Base::m_info;
  using Base::m_trace;
  using Base::require_computed;

 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  Procrustes() = default;

  template <typename Derived>
  explicit Procrustes(const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
    compute(M, options);
  }

  /// Solves max tr(Q^T M) for a square M (d x d).
  /// \throws rcpu::invalid_argument if M is empty, not square, or has NaN/Inf, or if the method was
  ///         compiled out (bdc_svd and jacobi_svd under RCPU_NO_EIGEN_SVD).
  template <typename Derived>
  Procrustes& compute(const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
    detail::require(M.rows() >= 1 && M.rows() == M.cols(),
                    "Procrustes: M is " + detail::shape(M) + ", expected a non-empty square matrix");
    (void)detail::procrustes_route(options.method, M.rows());  // a size no route can take, before any work
    detail::require_finite(M, "Procrustes: M");
    const detail::ConstMatRef<Scalar> Ms = M.template cast<Scalar>();  // no copy for a Matrix<Scalar>
    detail::ProcrustesSolution<Scalar> sol;
    detail::solve_procrustes<Scalar>(Ms, options, sol);
    m_q = std::move(sol.q);
    m_flipped = sol.flipped;
    this->take_report(sol);
    return *this;
  }

  /// Solves min ||Y - Q Z||_F from the two d x N matrices, via M = Y Z^T.
  template <typename DerivedY, typename DerivedZ>
  Procrustes& compute(const Eigen::MatrixBase<DerivedY>& Y, const Eigen::MatrixBase<DerivedZ>& Z,
                      const ProcrustesOptions& options = {}) {
    detail::require(Y.rows() == Z.rows() && Y.cols() == Z.cols(),
                    "Procrustes: Y is " + detail::shape(Y) + " and Z is " + detail::shape(Z) + ", must match");
    detail::require_finite(Y, "Procrustes: Y");
    detail::require_finite(Z, "Procrustes: Z");
    const Matrix M = Y.template cast<Scalar>() * Z.template cast<Scalar>().transpose();
    return compute(M, options);
  }

  // info(), method(), singular_values(), trace(), rank(), condition(): detail::ProcrustesReport.

  /// The orthogonal (or, with proper_rotation, special orthogonal) Q, d x d.
  const Matrix& rotation() const {
    require_computed("rotation");
    return m_q;
  }
  /// Whether proper_rotation flipped the last singular pair.
  bool reflection_fixed() const {
    require_computed("reflection_fixed");
    return m_flipped;
  }
  /// The isotropic scale s = tr(Q^T M) / (||Z||_F^2 + epsilon) minimising ||Y - s Q Z||_F.
  /// \throws rcpu::invalid_argument if ||Z||^2 + epsilon is not positive and finite.
  Scalar scale(Scalar z_squared_norm, Scalar epsilon = Scalar(0)) const {
    require_computed("scale");
    const Scalar den = z_squared_norm + epsilon;
    detail::require(std::isfinite(den) && den > 0, "Procrustes::scale: ||Z||^2 + epsilon = " + std::to_string(den) +
                                                       " must be positive and finite");
    return m_trace / den;
  }

 private:
  Matrix m_q;
  bool m_flipped = false;
};

/// The Procrustes rotation of a product, applied: Q W for the Q that maximises tr(Q^T A W^T), with
/// A and W both d x k. This is the compensation's problem (A = W G[:,K], W = W_K): when k < d, M =
/// A W^T has rank at most k and only Q's action on range(W) is determined, so rcpu solves a k x k
/// problem instead of the d x d one (two QRs, no M, no Q; docs/performance.md) with the route in
/// ProcrustesOptions::method. The result equals Procrustes(A W^T).rotation() * W wherever that is
/// unique (M of rank k); otherwise it is another optimum.
template <typename Scalar>
class ProcrustesProduct : public detail::ProcrustesReport<Scalar, ProcrustesProduct<Scalar>> {
  RCPU_STATIC_ASSERT_SCALAR(Scalar);
  using Base = detail::ProcrustesReport<Scalar, ProcrustesProduct<Scalar>>;
  friend Base;
  static constexpr const char* class_name = "ProcrustesProduct";
  using Base::require_computed;

 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  ProcrustesProduct() = default;

  template <typename DerivedA, typename DerivedW>
  ProcrustesProduct(const Eigen::MatrixBase<DerivedA>& A, const Eigen::MatrixBase<DerivedW>& W,
                    const ProcrustesOptions& options = {}, Index rank_bound = 0) {
    compute(A, W, options, rank_bound);
  }

  /// rank_bound > 0 says rank(A W^T) <= rank_bound, e.g. the number of tokens of the Gram inside A
  /// (rcpu checks it, and takes the low-rank route only when it holds and is small; docs/maths.md).
  /// \throws rcpu::invalid_argument if A and W differ in shape, are empty, or hold NaN/Inf.
  template <typename DerivedA, typename DerivedW>
  ProcrustesProduct& compute(const Eigen::MatrixBase<DerivedA>& A, const Eigen::MatrixBase<DerivedW>& W,
                             const ProcrustesOptions& options = {}, Index rank_bound = 0) {
    detail::require(A.rows() >= 1 && A.cols() >= 1 && A.rows() == W.rows() && A.cols() == W.cols(),
                    "ProcrustesProduct: A is " + detail::shape(A) + " and W is " + detail::shape(W) +
                        ", expected two non-empty matrices of one shape (d x k)");
    const Index d = A.rows(), k = A.cols();
    (void)detail::procrustes_route(options.method, std::min(d, k));  // a size no route can take, before any work
    detail::require_finite(A, "ProcrustesProduct: A");
    detail::require_finite(W, "ProcrustesProduct: W");
    Matrix a = A.template cast<Scalar>();
    const detail::ConstMatRef<Scalar> w = W.template cast<Scalar>();
    detail::ProcrustesSolution<Scalar> sol;
    detail::solve_procrustes_product<Scalar>(a, w, options, sol, m_qw, rank_bound);
    m_order = sol.order;
    this->take_report(sol);
    return *this;
  }

  /// The order of the square Procrustes problem that was solved: d (M formed, k >= d), k (the QR
  /// reduction, k < d) or rank_bound + 8 (the low-rank route).
  Index order() const {
    require_computed("order");
    return m_order;
  }

  // info(), method() (the route of the reduced problem), singular_values() (of M = A W^T, d of them),
  // trace() (tr(Q^T A W^T) = tr((Q W)^T A)), rank(), condition(): detail::ProcrustesReport.

  /// Q W (d x k).
  const Matrix& rotated() const {
    require_computed("rotated");
    return m_qw;
  }

 private:
  Matrix m_qw;
  Index m_order = 0;
};

/// Convenience: the Procrustes rotation Q of M. \throws rcpu::invalid_argument as Procrustes::compute,
/// rcpu::numerical_error if the SVD did not converge.
template <typename Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> procrustes_rotation(
    const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
  Procrustes<typename Derived::Scalar> p(M, options);
  if (p.info() != Info::success) throw numerical_error("procrustes_rotation: the decomposition did not converge");
  return p.rotation();
}

}  // namespace rcpu

#endif  // RCPU_PROCRUSTES_HPP
