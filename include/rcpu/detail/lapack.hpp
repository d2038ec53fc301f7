// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_LAPACK_HPP
#define RCPU_DETAIL_LAPACK_HPP

// Thin LAPACKE wrappers (RCPU_USE_LAPACKE only) for the factorizations rcpu's fast paths use, on
// column-major Eigen matrices. Every wrapper returns false when LAPACK reports a failure or the
// problem is too large for 32-bit LAPACK integers, so that the caller can fall back to Eigen.
//
// The `_work` entry points are used with workspace queries because LAPACKE's automatic workspace
// query rounds the size through a float in the single-precision routines, which is too small for
// n in the thousands (?syevd at n = 4096 fails with "parameter 8 had an illegal value").

#include "intrinsics.hpp"  // first: before Eigen (see there)

#include "../config.hpp"

#ifdef RCPU_HAVE_LAPACKE

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include <Eigen/Core>
#include <lapacke.h>

#include "blas.hpp"

namespace rcpu {
namespace detail {
namespace lapack {

// Whether workspaces of about `squares` n x n matrices fit in a 32-bit lapack_int (n < 46340 for one,
// 23170 for ?gesdd's four).
inline bool fits(Index n, double squares = 1.0) {
  return n >= 0 && squares * double(n) * double(n) + 16.0 * double(n) + 64.0 < double(INT_MAX);
}

// The largest order a Procrustes route that runs in LAPACK handles in 32-bit integers: ?gesdd needs
// four n x n workspaces, ?syevd (polar_eig, newton, mixed) two.
inline Index max_order(bool gesdd) {
  Index n = gesdd ? 23000 : 32000;
  while (fits(n + 1, gesdd ? 4.0 : 2.0)) ++n;
  return n;
}

// A workspace size read back from a query, with a margin for the float rounding of ?-routines.
template <typename S>
lapack_int query_size(S w) {
  return lapack_int(std::ceil(double(w) * (1.0 + 1e-6))) + 64;
}

#define RCPU_LAPACKE_SD(ret, name, params_d, params_s, args)            \
  inline ret name params_d { return LAPACKE_d##name##_work args; }      \
  inline ret name params_s { return LAPACKE_s##name##_work args; }

RCPU_LAPACKE_SD(lapack_int, gesdd,
                (char jobz, lapack_int m, lapack_int n, double* a, lapack_int lda, double* s, double* u, lapack_int ldu,
                 double* vt, lapack_int ldvt, double* work, lapack_int lwork, lapack_int* iwork),
                (char jobz, lapack_int m, lapack_int n, float* a, lapack_int lda, float* s, float* u, lapack_int ldu,
                 float* vt, lapack_int ldvt, float* work, lapack_int lwork, lapack_int* iwork),
                (LAPACK_COL_MAJOR, jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork))
RCPU_LAPACKE_SD(lapack_int, sytrd,
                (char uplo, lapack_int n, double* a, lapack_int lda, double* d, double* e, double* tau, double* work,
                 lapack_int lwork),
                (char uplo, lapack_int n, float* a, lapack_int lda, float* d, float* e, float* tau, float* work,
                 lapack_int lwork),
                (LAPACK_COL_MAJOR, uplo, n, a, lda, d, e, tau, work, lwork))
RCPU_LAPACKE_SD(lapack_int, stedc,
                (char compz, lapack_int n, double* d, double* e, double* z, lapack_int ldz, double* work,
                 lapack_int lwork, lapack_int* iwork, lapack_int liwork),
                (char compz, lapack_int n, float* d, float* e, float* z, lapack_int ldz, float* work, lapack_int lwork,
                 lapack_int* iwork, lapack_int liwork),
                (LAPACK_COL_MAJOR, compz, n, d, e, z, ldz, work, lwork, iwork, liwork))
RCPU_LAPACKE_SD(lapack_int, syevd,
                (char jobz, char uplo, lapack_int n, double* a, lapack_int lda, double* w, double* work,
                 lapack_int lwork, lapack_int* iwork, lapack_int liwork),
                (char jobz, char uplo, lapack_int n, float* a, lapack_int lda, float* w, float* work, lapack_int lwork,
                 lapack_int* iwork, lapack_int liwork),
                (LAPACK_COL_MAJOR, jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork))
RCPU_LAPACKE_SD(lapack_int, larft,
                (char direct, char storev, lapack_int n, lapack_int k, const double* v, lapack_int ldv,
                 const double* tau, double* t, lapack_int ldt),
                (char direct, char storev, lapack_int n, lapack_int k, const float* v, lapack_int ldv,
                 const float* tau, float* t, lapack_int ldt),
                (LAPACK_COL_MAJOR, direct, storev, n, k, v, ldv, tau, t, ldt))
RCPU_LAPACKE_SD(lapack_int, getrf, (lapack_int m, lapack_int n, double* a, lapack_int lda, lapack_int* ipiv),
                (lapack_int m, lapack_int n, float* a, lapack_int lda, lapack_int* ipiv),
                (LAPACK_COL_MAJOR, m, n, a, lda, ipiv))
RCPU_LAPACKE_SD(lapack_int, getri,
                (lapack_int n, double* a, lapack_int lda, const lapack_int* ipiv, double* work, lapack_int lwork),
                (lapack_int n, float* a, lapack_int lda, const lapack_int* ipiv, float* work, lapack_int lwork),
                (LAPACK_COL_MAJOR, n, a, lda, ipiv, work, lwork))
RCPU_LAPACKE_SD(lapack_int, potrf, (char uplo, lapack_int n, double* a, lapack_int lda),
                (char uplo, lapack_int n, float* a, lapack_int lda), (LAPACK_COL_MAJOR, uplo, n, a, lda))
RCPU_LAPACKE_SD(lapack_int, potrs,
                (char uplo, lapack_int n, lapack_int nrhs, const double* a, lapack_int lda, double* b, lapack_int ldb),
                (char uplo, lapack_int n, lapack_int nrhs, const float* a, lapack_int lda, float* b, lapack_int ldb),
                (LAPACK_COL_MAJOR, uplo, n, nrhs, a, lda, b, ldb))
RCPU_LAPACKE_SD(lapack_int, geqrf,
                (lapack_int m, lapack_int n, double* a, lapack_int lda, double* tau, double* work, lapack_int lwork),
                (lapack_int m, lapack_int n, float* a, lapack_int lda, float* tau, float* work, lapack_int lwork),
                (LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork))
RCPU_LAPACKE_SD(lapack_int, orgqr,
                (lapack_int m, lapack_int n, lapack_int k, double* a, lapack_int lda, const double* tau, double* work,
                 lapack_int lwork),
                (lapack_int m, lapack_int n, lapack_int k, float* a, lapack_int lda, const float* tau, float* work,
                 lapack_int lwork),
                (LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork))
#undef RCPU_LAPACKE_SD

/// Full SVD of a square A (destroyed): A = U diag(s) VT, s decreasing.
template <typename S>
bool svd(DenseMatrix<S>& A, DenseVector<S>& s, DenseMatrix<S>& U, DenseMatrix<S>& VT) {
  const Index n = A.rows();
  if (!fits(n, 4.0) || A.cols() != n) return false;
  const lapack_int N = lapack_int(n), ld = std::max<lapack_int>(1, N);
  s.resize(n);
  U.resize(n, n);
  VT.resize(n, n);
  std::vector<lapack_int> iwork(8 * std::size_t(std::max<Index>(1, n)));
  S q = 0;
  if (gesdd('A', N, N, A.data(), ld, s.data(), U.data(), ld, VT.data(), ld, &q, -1, iwork.data()) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  return gesdd('A', N, N, A.data(), ld, s.data(), U.data(), ld, VT.data(), ld, work.data(), lapack_int(work.size()),
               iwork.data()) == 0;
}

/// Eigenvalues (increasing) of a symmetric A from its lower triangle (destroyed), by ?syevd.
template <typename S>
bool eigenvalues_lower(DenseMatrix<S>& A, DenseVector<S>& w) {
  const Index n = A.rows();
  if (!fits(n)) return false;
  const lapack_int N = lapack_int(n), ld = std::max<lapack_int>(1, N);
  w.resize(n);
  S q = 0;
  lapack_int iq = 0;
  if (syevd('N', 'L', N, A.data(), ld, w.data(), &q, -1, &iq, -1) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  std::vector<lapack_int> iwork(std::size_t(std::max<lapack_int>(1, iq)));
  return syevd('N', 'L', N, A.data(), ld, w.data(), work.data(), lapack_int(work.size()), iwork.data(),
               lapack_int(iwork.size())) == 0;
}

/// Eigen-decomposition of a symmetric A from its lower triangle, by ?syevd: A is overwritten by
/// the eigenvectors, w gets the eigenvalues in increasing order.
template <typename S>
bool syevd_lower(DenseMatrix<S>& A, DenseVector<S>& w) {
  const Index n = A.rows();
  if (!fits(n, 2.0)) return false;  // lwork = 1 + 6n + 2n^2
  const lapack_int N = lapack_int(n), ld = std::max<lapack_int>(1, N);
  w.resize(n);
  S q = 0;
  lapack_int iq = 0;
  if (syevd('V', 'L', N, A.data(), ld, w.data(), &q, -1, &iq, -1) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  std::vector<lapack_int> iwork(std::size_t(std::max<lapack_int>(1, iq)));
  return syevd('V', 'L', N, A.data(), ld, w.data(), work.data(), lapack_int(work.size()), iwork.data(),
               lapack_int(iwork.size())) == 0;
}

/// C <- Q C (transpose = false) or Q^T C (true) for Q = H(0) ... H(nref-1), H(i) = I - tau_i v_i v_i^T
/// with v_i = [0 (i + off); 1; F(i+off+1:, i)] (LAPACK's storage: off = 0 for ?geqrf, 1 for ?sytrd
/// 'L'). Blocks of 128 reflectors in compact WY form (?larft), applied with two GEMMs each: LAPACK's
/// ?ormqr/?ormtr use blocks of 32 and run at a fraction of GEMM speed.
template <typename S>
void apply_reflectors(const DenseMatrix<S>& F, const DenseVector<S>& tau, Index nref, Index off, MatRef<S> C,
                      bool transpose) {
  constexpr Index nb = 128;
  const Index rows = F.rows(), n = C.cols();
  if (nref <= 0 || n == 0) return;
  DenseMatrix<S> Y, T(nb, nb), X;
  const Index last = ((nref - 1) / nb) * nb;
  for (Index step = 0; step <= last / nb; ++step) {
    const Index j0 = transpose ? step * nb : last - step * nb;
    const Index k = std::min(nb, nref - j0), m = rows - j0 - off;  // reflectors j0.. on rows j0+off..
    Y.setZero(m, k);
    for (Index c = 0; c < k; ++c) {
      Y(c, c) = S(1);
      Y.col(c).tail(m - c - 1) = F.col(j0 + c).tail(m - c - 1);
    }
    larft('F', 'C', lapack_int(m), lapack_int(k), Y.data(), lapack_int(std::max<Index>(1, m)), tau.data() + j0,
          T.data(), lapack_int(nb));
    auto Crows = C.bottomRows(m);
    X.resize(k, n);
    gemm<S>(Op::transpose, Op::none, S(1), Y, Crows, S(0), X);  // X = Y^T C
    if (transpose)
      X = T.topLeftCorner(k, k).template triangularView<Eigen::Upper>().transpose() * X;
    else
      X = T.topLeftCorner(k, k).template triangularView<Eigen::Upper>() * X;
    gemm<S>(Op::none, Op::none, S(-1), Y, X, S(1), Crows);  // C -= Y X
  }
}

/// Householder QR of F (m x k, m >= k) in place, LAPACK storage (?geqrf).
template <typename S>
bool householder_qr(DenseMatrix<S>& F, DenseVector<S>& tau) {
  const Index m = F.rows(), k = F.cols();
  if (!fits(m) || k > m) return false;
  tau.resize(std::max<Index>(1, k));
  if (k == 0) return true;
  S q = 0;
  const lapack_int ld = lapack_int(std::max<Index>(1, m));
  if (geqrf(lapack_int(m), lapack_int(k), F.data(), ld, tau.data(), &q, -1) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  return geqrf(lapack_int(m), lapack_int(k), F.data(), ld, tau.data(), work.data(), lapack_int(work.size())) == 0;
}

/// Eigen-decomposition of a symmetric A from its lower triangle, in three steps: ?sytrd (to
/// tridiagonal), ?stedc (divide and conquer), and the back-transformation as large GEMMs. Same
/// result as ?syevd; faster because LAPACK's ?ormtr applies the reflectors 32 at a time, which
/// runs at a fraction of GEMM speed (measured: 12 GFLOP/s against 75 for DGEMM at n = 4096).
/// A is destroyed; V gets the eigenvectors, w the eigenvalues in increasing order.
template <typename S>
bool eigh_lower(DenseMatrix<S>& A, DenseVector<S>& w, DenseMatrix<S>& V) {
  const Index n = A.rows();
  if (!fits(n)) return false;
  const lapack_int N = lapack_int(n), ld = std::max<lapack_int>(1, N);
  DenseVector<S> e(std::max<Index>(1, n - 1)), tau(std::max<Index>(1, n - 1));
  w.resize(n);
  S q = 0;
  if (sytrd('L', N, A.data(), ld, w.data(), e.data(), tau.data(), &q, -1) != 0) return false;
  {
    std::vector<S> work(std::size_t(query_size(q)));
    if (sytrd('L', N, A.data(), ld, w.data(), e.data(), tau.data(), work.data(), lapack_int(work.size())) != 0)
      return false;
  }
  V.resize(n, n);
  lapack_int iq = 0;
  if (stedc('I', N, w.data(), e.data(), V.data(), ld, &q, -1, &iq, -1) != 0) return false;
  {
    std::vector<S> work(std::size_t(query_size(q)));
    std::vector<lapack_int> iwork(std::size_t(std::max<lapack_int>(1, iq)));
    if (stedc('I', N, w.data(), e.data(), V.data(), ld, work.data(), lapack_int(work.size()), iwork.data(),
              lapack_int(iwork.size())) != 0)
      return false;
  }
  // V <- Qt V with Qt = H(0) H(1) ... H(n-2), H(i) = I - tau_i v_i v_i^T, v_i = [0 (i+1); 1; A(i+2:n, i)].
  apply_reflectors<S>(A, tau, n - 1, 1, V, false);
  return true;
}

/// Inverse of a square A in place (?getrf + ?getri). False when A is exactly singular.
template <typename S>
bool inverse(DenseMatrix<S>& A) {
  const Index n = A.rows();
  if (!fits(n)) return false;
  const lapack_int N = lapack_int(n), ld = std::max<lapack_int>(1, N);
  std::vector<lapack_int> ipiv(std::size_t(std::max<Index>(1, n)));
  if (getrf(N, N, A.data(), ld, ipiv.data()) != 0) return false;
  S q = 0;
  if (getri(N, A.data(), ld, ipiv.data(), &q, -1) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  return getri(N, A.data(), ld, ipiv.data(), work.data(), lapack_int(work.size())) == 0;
}

/// Sign of det(A) through ?getrf on a copy: +1, -1, or 0 when singular.
template <typename S>
int det_sign(const DenseMatrix<S>& A0) {
  DenseMatrix<S> A = A0;
  const Index n = A.rows();
  if (!fits(n)) return 0;
  std::vector<lapack_int> ipiv(std::size_t(std::max<Index>(1, n)));
  if (getrf(lapack_int(n), lapack_int(n), A.data(), lapack_int(std::max<Index>(1, n)), ipiv.data()) != 0) return 0;
  int sign = 1;
  for (Index i = 0; i < n; ++i) {
    if (ipiv[std::size_t(i)] != lapack_int(i + 1)) sign = -sign;
    if (A(i, i) < 0) sign = -sign;
  }
  return sign;
}

/// Cholesky A = L L^T in place (lower triangle). False when A is not positive definite.
template <typename S>
bool cholesky_lower(MatRef<S> A) {
  if (!fits(A.rows())) return false;
  return potrf('L', lapack_int(A.rows()), A.data(), lapack_int(std::max<Index>(1, A.outerStride()))) == 0;
}

/// Solves (L L^T) X = B in place, L from cholesky_lower().
template <typename S>
bool cholesky_solve(const ConstMatRef<S>& L, MatRef<S> B) {
  if (!fits(L.rows()) || !fits(B.cols())) return false;
  return potrs('L', lapack_int(L.rows()), lapack_int(B.cols()), L.data(), lapack_int(std::max<Index>(1, L.outerStride())),
               B.data(), lapack_int(std::max<Index>(1, B.outerStride()))) == 0;
}

/// The thin Q (m x k) of a Householder QR in LAPACK storage (householder_qr's F and tau), in place.
template <typename S>
bool householder_thin_q(DenseMatrix<S>& F, const DenseVector<S>& tau) {
  const Index m = F.rows(), k = F.cols();
  if (!fits(m) || k > m) return false;
  if (k == 0) return true;
  const lapack_int M = lapack_int(m), K = lapack_int(k), ld = std::max<lapack_int>(1, M);
  S q = 0;
  if (orgqr(M, K, K, F.data(), ld, tau.data(), &q, -1) != 0) return false;
  std::vector<S> work(std::size_t(query_size(q)));
  return orgqr(M, K, K, F.data(), ld, tau.data(), work.data(), lapack_int(work.size())) == 0;
}

/// Replaces the m x k matrix A (m >= k) by the k orthonormal columns of its thin QR.
template <typename S>
bool orthonormalize(DenseMatrix<S>& A) {
  const Index m = A.rows(), k = A.cols();
  if (!fits(m) || k > m) return false;
  if (k == 0) return true;
  const lapack_int M = lapack_int(m), K = lapack_int(k), ld = std::max<lapack_int>(1, M);
  DenseVector<S> tau(k);
  S q = 0, q2 = 0;
  if (geqrf(M, K, A.data(), ld, tau.data(), &q, -1) != 0) return false;
  if (orgqr(M, K, K, A.data(), ld, tau.data(), &q2, -1) != 0) return false;
  std::vector<S> work(std::size_t(std::max(query_size(q), query_size(q2))));
  if (geqrf(M, K, A.data(), ld, tau.data(), work.data(), lapack_int(work.size())) != 0) return false;
  return orgqr(M, K, K, A.data(), ld, tau.data(), work.data(), lapack_int(work.size())) == 0;
}

}  // namespace lapack
}  // namespace detail
}  // namespace rcpu

#endif  // RCPU_HAVE_LAPACKE

#endif  // RCPU_DETAIL_LAPACK_HPP
