// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_POLAR_HPP
#define RCPU_DETAIL_POLAR_HPP

// The routes of rcpu::Procrustes (docs/performance.md has the measurements behind the default).
// Every route returns the orthogonal polar factor Q of a square M (Q = U V^T for M = U S V^T), the
// singular values of M in decreasing order, and the singular pair of the smallest singular value
// (for the Kabsch det fix).
//
// polar_eig, the default: Q = M (M^T M)^{-1/2} from the symmetric eigen-decomposition
//   M^T M = V diag(lambda) V^T, i.e. U = M V diag(lambda)^{-1/2}. Squaring M costs accuracy only in
//   the directions whose singular value is small compared with the largest (the error of those
//   columns of U grows like eps * (sigma_max / sigma_i)^2), so only the "resolved" directions,
//   sigma_i > tau * sigma_max, are taken from the eigen-decomposition. The others span null(M)
//   and M's ill-conditioned tail: an orthonormal basis Up of the complement of U_r is built
//   (deterministic pseudo-random vectors, projected out of U_r twice and orthonormalized), and the
//   small problem T = Up^T M V_t, which holds M's tail exactly, is solved recursively with the same
//   route. A block of M that is zero to rounding (rank-deficient M) gets any orthogonal map, which
//   is all Procrustes asks there: Q is not unique, Q W_K is.
// newton: Higham's scaled Newton iteration X <- (mu X + X^{-T} / mu) / 2 on products and inverses;
//   needs a non-singular M and falls back to polar_eig otherwise.
// mixed: the eigen-decomposition of M^T M in single precision (LAPACK), refined in double by Ogita
//   and Aishima's iteration (three products per step), then the assembly of polar_eig; falls back to
//   polar_eig when the refinement does not converge (clustered or ill-conditioned spectra).

#include "intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <Eigen/Core>
#ifndef RCPU_HAVE_LAPACKE
// Pure Eigen only: with LAPACKE none of Eigen's decompositions is instantiated (compile time).
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#endif

#include "../config.hpp"
#include "blas.hpp"
#include "lapack.hpp"

namespace rcpu {
namespace detail {

/// What a route produces.
template <typename S>
struct PolarFactor {
  DenseMatrix<S> q;             // orthogonal polar factor
  DenseVector<S> sigma;         // singular values of M, decreasing
  DenseVector<S> u_min, v_min;  // singular pair of sigma.minCoeff() (for the det fix)
  bool ok = false;
};

// Directions with sigma_i <= polar_tau * sigma_max go to the recursive tail problem. 1e-3 keeps the
// error of the resolved columns below ~1e-13 * sqrt(n) in double and the tail small for typical M.
template <typename S>
constexpr S polar_tau() {
  return std::is_same<S, float>::value ? S(3e-2) : S(1e-3);
}
constexpr int polar_max_depth = 12;

/// Symmetric eigen-decomposition from the lower triangle of A (destroyed): w increasing, V orthogonal.
template <typename S>
bool sym_eig(DenseMatrix<S>& A, DenseVector<S>& w, DenseMatrix<S>& V) {
#ifdef RCPU_HAVE_LAPACKE
  return lapack::eigh_lower(A, w, V);
#else
  Eigen::SelfAdjointEigenSolver<DenseMatrix<S>> es(A, Eigen::ComputeEigenvectors);
  if (es.info() != Eigen::Success) return false;
  w = es.eigenvalues();
  V = es.eigenvectors();
  return true;
#endif
}

/// Eigenvalues only of a symmetric matrix from its lower triangle (destroyed), increasing.
template <typename S>
bool sym_eigenvalues(DenseMatrix<S>& A, DenseVector<S>& w) {
#ifdef RCPU_HAVE_LAPACKE
  return lapack::eigenvalues_lower(A, w);
#else
  Eigen::SelfAdjointEigenSolver<DenseMatrix<S>> es(A, Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success) return false;
  w = es.eigenvalues();
  return true;
#endif
}

/// An orthonormal basis of the columns of G (n x k, k <= n), in place.
template <typename S>
bool orthonormalize_columns(DenseMatrix<S>& G) {
#ifdef RCPU_HAVE_LAPACKE
  return lapack::orthonormalize(G);
#else
  Eigen::HouseholderQR<DenseMatrix<S>> qr(G);
  G = qr.householderQ() * DenseMatrix<S>::Identity(G.rows(), G.cols());
  return true;
#endif
}

/// Deterministic, well-spread pseudo-random n x k matrix (a hash; no global RNG state).
template <typename S>
DenseMatrix<S> spread_matrix(Index n, Index k) {
  DenseMatrix<S> G(n, k);
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < n; ++i) {
      std::uint64_t h = std::uint64_t(i) * 0x9E3779B97F4A7C15ull ^ (std::uint64_t(j) + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
      h ^= h >> 31;
      h *= 0x94D049BB133111EBull;
      h ^= h >> 29;
      G(i, j) = S(double(h >> 11) * (1.0 / 9007199254740992.0) - 0.5);
    }
  return G;
}

/// Q = I: the answer for a block of M that is zero to rounding.
template <typename S>
void identity_factor(Index n, PolarFactor<S>& out) {
  out.q.setIdentity(n, n);
  out.sigma.setZero(n);
  out.u_min = DenseVector<S>::Unit(n, n - 1);
  out.v_min = out.u_min;
  out.ok = true;
}

template <typename S>
bool polar_eig(const ConstMatRef<S>& M, PolarFactor<S>& out, S noise_floor, int depth);

/// Assembly shared by polar_eig and mixed: from the eigenpairs of M^T M (w increasing, V) to Q.
/// V is consumed (its columns are reordered).
template <typename S>
bool polar_from_eig(const ConstMatRef<S>& M, DenseVector<S> w, DenseMatrix<S> V, PolarFactor<S>& out,
                    S noise_floor, int depth) {
  const Index n = M.rows();
  const S lmax = std::max(w(n - 1), S(0));
  const S smax = std::sqrt(lmax);
  if (!(smax > noise_floor)) {  // M is zero to rounding (or was exactly zero)
    identity_factor(n, out);
    return true;
  }
  if (depth == 0) noise_floor = S(n) * std::numeric_limits<S>::epsilon() * smax;
  // Decreasing order; sigma from the eigenvalues for the resolved part.
  w.reverseInPlace();
  V.rowwise().reverseInPlace();
  const S cut = polar_tau<S>() * smax;
  Index r = 0;
  while (r < n && w(r) > S(0) && std::sqrt(w(r)) > cut && std::sqrt(w(r)) > noise_floor) ++r;
  DenseVector<S> sigma(n);
  DenseMatrix<S> C(n, n);
  gemm<S>(Op::none, Op::none, S(1), M, V, S(0), C);  // C = M V = U S
  // sigma_i = ||M v_i|| = sqrt(v_i^T A v_i): the Rayleigh quotient, consistent with V to second order.
  for (Index i = 0; i < r; ++i) {
    sigma(i) = C.col(i).norm();
    C.col(i) /= sigma(i);  // U_r
  }
  const Index nt = n - r;
  if (nt > 0) {
    // The tail: an orthonormal basis Up of the complement of U_r, T = Up^T C_t (M's tail in it),
    // solved recursively, and [U_r, Up Q_t]. Up comes from whichever is cheaper (flops):
    //  - few tail columns: pseudo-random vectors projected out of U_r twice and orthonormalized,
    //    about 8 n r nt + 12 n nt^2;
    //  - many: the Householder QR of U_r, whose trailing reflector columns span the complement,
    //    about 2 n r^2 + 8 n r nt (applied in place to C_t: no n x n buffer).
    const double dn = double(n), dr = double(r), dt = double(nt);
    const bool by_qr = 2 * dn * dr * dr - 0.67 * dr * dr * dr + 8 * dn * dr * dt - 4 * dr * dr * dt <
                       8 * dn * dr * dt + 12 * dn * dt * dt;
    PolarFactor<S> sub;
    auto solve_tail = [&](const DenseMatrix<S>& T) {
      if (depth + 1 >= polar_max_depth) {
        identity_factor(nt, sub);
        return true;
      }
      return polar_eig<S>(T, sub, noise_floor, depth + 1);
    };
    auto Ct = C.rightCols(nt);
    if (by_qr) {
      DenseMatrix<S> F = C.leftCols(r);
      DenseVector<S> um = DenseVector<S>::Zero(n);
#ifdef RCPU_HAVE_LAPACKE
      DenseVector<S> tau;
      if (!lapack::householder_qr(F, tau)) return false;
      lapack::apply_reflectors<S>(F, tau, r, 0, Ct, true);  // Q^T C_t
      if (!solve_tail(Ct.bottomRows(nt))) return false;
      Ct.topRows(r).setZero();
      Ct.bottomRows(nt) = sub.q;
      lapack::apply_reflectors<S>(F, tau, r, 0, Ct, false);  // Q [0; Q_t]
      um.tail(nt) = sub.u_min;
      lapack::apply_reflectors<S>(F, tau, r, 0, um, false);
#else
      Eigen::HouseholderQR<DenseMatrix<S>> qr(F);
      Ct.applyOnTheLeft(qr.householderQ().adjoint());
      if (!solve_tail(Ct.bottomRows(nt))) return false;
      Ct.topRows(r).setZero();
      Ct.bottomRows(nt) = sub.q;
      Ct.applyOnTheLeft(qr.householderQ());
      um.tail(nt) = sub.u_min;
      um.applyOnTheLeft(qr.householderQ());
#endif
      out.u_min = std::move(um);
    } else {
      auto Ur = C.leftCols(r);
      DenseMatrix<S> Up = spread_matrix<S>(n, nt), P(r, nt);
      for (int pass = 0; pass < 2; ++pass) {  // twice is enough (Kahan, Parlett)
        gemm<S>(Op::transpose, Op::none, S(1), Ur, Up, S(0), P);
        gemm<S>(Op::none, Op::none, S(-1), Ur, P, S(1), Up);
        if (!orthonormalize_columns(Up)) return false;
      }
      DenseMatrix<S> T(nt, nt);
      gemm<S>(Op::transpose, Op::none, S(1), Up, Ct, S(0), T);
      if (!solve_tail(T)) return false;
      gemm<S>(Op::none, Op::none, S(1), Up, sub.q, S(0), Ct);  // [U_r, Up Q_t]
      out.u_min = Up * sub.u_min;
    }
    sigma.tail(nt) = sub.sigma;
    out.v_min = V.rightCols(nt) * sub.v_min;
  } else {
    out.u_min = C.col(n - 1);
    out.v_min = V.col(n - 1);
  }
  out.q.resize(n, n);
  gemm<S>(Op::none, Op::transpose, S(1), C, V, S(0), out.q);  // Q = U V^T
  out.sigma = std::move(sigma);
  out.ok = true;
  return true;
}

/// The polar factor through the eigen-decomposition of M^T M (see the top of this file).
/// noise_floor: singular values at or below it are rounding noise of the caller's M (0 at the top).
template <typename S>
bool polar_eig(const ConstMatRef<S>& M, PolarFactor<S>& out, S noise_floor, int depth) {
  const Index n = M.rows();
  DenseMatrix<S> A(n, n), V;
  DenseVector<S> w;
  syrk_lower<S>(Op::transpose, S(1), M, S(0), A);  // A = M^T M
  if (!sym_eig(A, w, V)) return false;
  A.resize(0, 0);
  return polar_from_eig<S>(M, std::move(w), std::move(V), out, noise_floor, depth);
}

/// One sweep of Newton-Schulz, Q <- Q (3 I - Q^T Q) / 2: restores orthogonality lost to rounding
/// (quadratically) without moving Q by more than that loss.
template <typename S>
void newton_schulz_step(DenseMatrix<S>& Q) {
  const Index n = Q.rows();
  DenseMatrix<S> H(n, n);
  syrk_lower<S>(Op::transpose, S(-0.5), Q, S(0), H);  // -Q^T Q / 2
  symmetrize_lower<S>(H);
  H.diagonal().array() += S(1.5);
  DenseMatrix<S> Qn(n, n);
  gemm<S>(Op::none, Op::none, S(1), Q, H, S(0), Qn);
  Q.swap(Qn);
}

/// Probe estimate of ||Q^T Q - I||_F / sqrt(n) with two fixed vectors: O(n^2).
template <typename S>
S orthogonality_probe(const DenseMatrix<S>& Q) {
  const DenseMatrix<S> Z = spread_matrix<S>(Q.rows(), 2);
  const DenseMatrix<S> E = Q.transpose() * (Q * Z) - Z;
  return E.norm() / Z.norm();
}

/// Fills sigma (decreasing) from H = Q^T M when a route only made Q: M = Q H, H = W diag(sigma) W^T.
template <typename S>
bool singular_values_from_q(const ConstMatRef<S>& M, PolarFactor<S>& out) {
  const Index n = M.rows();
  DenseMatrix<S> H(n, n);
  gemm<S>(Op::transpose, Op::none, S(1), out.q, M, S(0), H);
  H = (S(0.5) * (H + H.transpose())).eval();
  DenseVector<S> w;
  if (!sym_eigenvalues(H, w)) return false;
  out.sigma = w.reverse().cwiseMax(S(0));
  out.u_min.resize(0);  // computed on demand (det fix only)
  out.v_min.resize(0);
  return true;
}

/// Smallest eigenpair of H = sym(Q^T M) for the det fix of routes that did not keep it:
/// M = (Q W) diag(s) W^T for H = W diag(s) W^T.
template <typename S>
bool smallest_pair_from_q(const ConstMatRef<S>& M, PolarFactor<S>& out) {
  const Index n = M.rows();
  DenseMatrix<S> H(n, n), W;
  gemm<S>(Op::transpose, Op::none, S(1), out.q, M, S(0), H);
  H = (S(0.5) * (H + H.transpose())).eval();
  DenseVector<S> w;
  if (!sym_eig(H, w, W)) return false;
  out.v_min = W.col(0);
  out.u_min = out.q * out.v_min;
  return true;
}

/// Higham's scaled Newton iteration. False (caller falls back) when M is numerically singular.
template <typename S>
bool polar_newton(const ConstMatRef<S>& M, PolarFactor<S>& out) {
  const Index n = M.rows();
  const S eps = std::numeric_limits<S>::epsilon();
  DenseMatrix<S> X = M, Xi, Xn(n, n);
  bool scaled = true, last = false;
  for (int it = 0; it < 60; ++it) {
#ifdef RCPU_HAVE_LAPACKE
    Xi = X;
    const bool inv_ok = lapack::inverse(Xi);
#else
    Xi = Eigen::PartialPivLU<DenseMatrix<S>>(X).inverse();
    const bool inv_ok = true;
#endif
    if (!inv_ok || !Xi.allFinite()) return false;
    const S nx = X.norm(), ni = Xi.norm();
    // kappa_F(X) >= 1 / (n eps): the first inverse is noise, the route cannot be accurate.
    if (it == 0 && nx * ni > S(1) / (S(n) * eps)) return false;
    const S mu = scaled ? std::sqrt(ni / nx) : S(1);  // Higham's Frobenius-norm scaling
    Xn = S(0.5) * (mu * X + Xi.transpose() / mu);
    const S delta = (Xn - X).norm() / Xn.norm();
    X.swap(Xn);
    if (delta < S(1e-2)) scaled = false;
    if (last) break;
    if (delta < std::sqrt(S(n) * eps)) last = true;  // quadratic: one more step reaches rounding
  }
  out.q = std::move(X);
  out.ok = true;
  return singular_values_from_q<S>(M, out);
}

#ifdef RCPU_HAVE_LAPACKE
/// Mixed precision: float eigen-decomposition of M^T M refined in double, then polar_eig's assembly.
template <int = 0>  // instantiated only where used (a plain inline function would be in every unit)
inline bool polar_mixed(const ConstMatRef<double>& M, PolarFactor<double>& out) {
  const Index n = M.rows();
  DenseMatrix<double> A(n, n);
  syrk_lower<double>(Op::transpose, 1.0, M, 0.0, A);
  DenseMatrix<float> Af = A.cast<float>(), Vf;
  DenseVector<float> wf;
  if (!sym_eig(Af, wf, Vf)) return false;
  Af.resize(0, 0);
  A.resize(0, 0);
  DenseMatrix<double> V = Vf.cast<double>();
  Vf.resize(0, 0);
  DenseVector<double> lam(n);
  DenseMatrix<double> C(n, n), Sm(n, n), R(n, n), E(n, n), Vn(n, n);
  // Ogita & Aishima (2018), "Iterative refinement for symmetric eigenvalue decomposition".
  bool converged = false;
  for (int it = 0; it < 5; ++it) {
    gemm<double>(Op::none, Op::none, 1.0, M, V, 0.0, C);
    syrk_lower<double>(Op::transpose, 1.0, C, 0.0, Sm);  // V^T A V
    symmetrize_lower<double>(Sm);
    syrk_lower<double>(Op::transpose, -1.0, V, 0.0, R);  // I - V^T V
    symmetrize_lower<double>(R);
    R.diagonal().array() += 1.0;
    for (Index i = 0; i < n; ++i) lam(i) = Sm(i, i) / (1.0 - R(i, i));
    DenseMatrix<double> off = Sm;
    off.diagonal() -= lam;
    const double delta = 2.0 * (off.norm() + lam.cwiseAbs().maxCoeff() * R.norm());
    double emax = 0;
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < n; ++i) {
        if (i == j) {
          E(i, j) = 0.5 * R(i, j);
        } else if (std::abs(lam(i) - lam(j)) > delta) {
          E(i, j) = (Sm(i, j) + lam(j) * R(i, j)) / (lam(j) - lam(i));
        } else {
          E(i, j) = 0.5 * R(i, j);
        }
        emax = std::max(emax, std::abs(E(i, j)));
      }
    Vn = V;
    gemm<double>(Op::none, Op::none, 1.0, V, E, 1.0, Vn);
    V.swap(Vn);
    if (emax < 1e-7) {  // quadratic convergence: the step just taken brought the error to ~emax^2
      converged = true;
      break;
    }
  }
  // Not converged (clusters or an ill-conditioned M that float cannot separate): the caller falls back.
  if (!converged) return false;
  // Increasing order for the assembly.
  std::vector<Index> order(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) order[std::size_t(i)] = i;
  std::sort(order.begin(), order.end(), [&](Index a, Index b) { return lam(a) < lam(b); });
  DenseVector<double> w(n);
  DenseMatrix<double> Vs(n, n);
  for (Index i = 0; i < n; ++i) {
    w(i) = lam(order[std::size_t(i)]);
    Vs.col(i) = V.col(order[std::size_t(i)]);
  }
  return polar_from_eig<double>(M, std::move(w), std::move(Vs), out, 0.0, 0);
}
#endif  // RCPU_HAVE_LAPACKE

}  // namespace detail
}  // namespace rcpu

#endif  // RCPU_DETAIL_POLAR_HPP
