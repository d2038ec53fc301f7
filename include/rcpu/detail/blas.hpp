// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_BLAS_HPP
#define RCPU_DETAIL_BLAS_HPP

// The BLAS-3 kernels rcpu's hot loops are made of (GEMM, SYRK, and TRMM for the product
// Procrustes), on column-major views with a unit inner stride. With RCPU_USE_BLAS they call CBLAS
// (OpenBLAS: multi-threaded, about 1.6x Eigen's GEMM and 3x Eigen's rank update on 2 cores,
// docs/benchmarks.md) unless OpenBLAS runs generic kernels on this CPU (kernels.hpp); otherwise
// Eigen's own products, with the same results to rounding.

#include "intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <climits>

#include <Eigen/Core>

#include "../config.hpp"
#include "../kernels.hpp"

#ifdef RCPU_HAVE_BLAS
#include <cblas.h>
#endif

namespace rcpu {
namespace detail {

template <typename S>
using DenseMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
template <typename S>
using DenseVector = Eigen::Matrix<S, Eigen::Dynamic, 1>;
// Column-major, unit inner stride, any outer stride: a Matrix, a block of one, or a Map. Binding
// anything else to the const version makes one temporary copy (Eigen::Ref's rule).
template <typename S>
using ConstMatRef = Eigen::Ref<const DenseMatrix<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using MatRef = Eigen::Ref<DenseMatrix<S>, 0, Eigen::OuterStride<>>;

enum class Op { none, transpose };

#ifdef RCPU_HAVE_BLAS
// CBLAS takes int sizes; larger problems (never met with LLM layers) go to Eigen.
inline bool blas_fits(Index a, Index b, Index c, Index d = 0) {
  const Index m = INT_MAX;
  return a <= m && b <= m && c <= m && d <= m;
}
inline CBLAS_TRANSPOSE cblas_op(Op o) { return o == Op::none ? CblasNoTrans : CblasTrans; }
inline void cblas_gemm_(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a,
                        int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void cblas_gemm_(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a,
                        int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void cblas_syrk_(CBLAS_TRANSPOSE t, int n, int k, double alpha, const double* a, int lda, double beta,
                        double* c, int ldc) {
  cblas_dsyrk(CblasColMajor, CblasLower, t, n, k, alpha, a, lda, beta, c, ldc);
}
inline void cblas_syrk_(CBLAS_TRANSPOSE t, int n, int k, float alpha, const float* a, int lda, float beta, float* c,
                        int ldc) {
  cblas_ssyrk(CblasColMajor, CblasLower, t, n, k, alpha, a, lda, beta, c, ldc);
}
inline void cblas_trmm_(CBLAS_TRANSPOSE t, int m, int n, const double* r, int ldr, double* b, int ldb) {
  cblas_dtrmm(CblasColMajor, CblasRight, CblasUpper, t, CblasNonUnit, m, n, 1.0, r, ldr, b, ldb);
}
inline void cblas_trmm_(CBLAS_TRANSPOSE t, int m, int n, const float* r, int ldr, float* b, int ldb) {
  cblas_strmm(CblasColMajor, CblasRight, CblasUpper, t, CblasNonUnit, m, n, 1.0f, r, ldr, b, ldb);
}
#endif

/// C = alpha op(A) op(B) + beta C (beta = 0 ignores C's old contents, NaN included).
template <typename S>
void gemm(Op ta, Op tb, S alpha, const ConstMatRef<S>& A, const ConstMatRef<S>& B, S beta, MatRef<S> C) {
  const Index m = C.rows(), n = C.cols(), k = ta == Op::none ? A.cols() : A.rows();
  eigen_assert((ta == Op::none ? A.rows() : A.cols()) == m);
  eigen_assert((tb == Op::none ? B.rows() : B.cols()) == k && (tb == Op::none ? B.cols() : B.rows()) == n);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == S(0)) C.setZero(); else C *= beta;
    return;
  }
#ifdef RCPU_HAVE_BLAS
  if (product_kernels() == ProductKernels::blas && blas_fits(m, n, k, A.outerStride()) &&
      blas_fits(B.outerStride(), C.outerStride(), 0)) {
    cblas_gemm_(cblas_op(ta), cblas_op(tb), int(m), int(n), int(k), alpha, A.data(), int(std::max<Index>(1, A.outerStride())),
                B.data(), int(std::max<Index>(1, B.outerStride())), beta, C.data(), int(std::max<Index>(1, C.outerStride())));
    return;
  }
#endif
  if (beta == S(0)) C.setZero(); else if (beta != S(1)) C *= beta;
  if (ta == Op::none && tb == Op::none) C.noalias() += alpha * A * B;
  else if (ta == Op::none) C.noalias() += alpha * A * B.transpose();
  else if (tb == Op::none) C.noalias() += alpha * A.transpose() * B;
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

/// Lower triangle of C = alpha op(A) op(A)^T + beta C: op = none gives A A^T, transpose gives A^T A.
/// The strictly upper triangle of C is not touched.
template <typename S>
void syrk_lower(Op t, S alpha, const ConstMatRef<S>& A, S beta, MatRef<S> C) {
  const Index n = C.rows(), k = t == Op::none ? A.cols() : A.rows();
  eigen_assert(C.cols() == n && (t == Op::none ? A.rows() : A.cols()) == n);
  if (n == 0) return;
#ifdef RCPU_HAVE_BLAS
  if (product_kernels() == ProductKernels::blas && blas_fits(n, k, A.outerStride(), C.outerStride()) && k > 0) {
    cblas_syrk_(cblas_op(t), int(n), int(k), alpha, A.data(), int(std::max<Index>(1, A.outerStride())), beta, C.data(),
                int(std::max<Index>(1, C.outerStride())));
    return;
  }
#endif
  if (beta == S(0)) C.template triangularView<Eigen::Lower>().setZero();
  else if (beta != S(1)) C.template triangularView<Eigen::Lower>() *= beta;
  if (k == 0) return;
  if (t == Op::none) C.template selfadjointView<Eigen::Lower>().rankUpdate(A, alpha);
  else C.template selfadjointView<Eigen::Lower>().rankUpdate(A.transpose(), alpha);
}

/// B <- B op(R) for an upper triangular R (square; its strictly lower triangle is not read).
template <typename S>
void trmm_right_upper(Op t, const ConstMatRef<S>& R, MatRef<S> B) {
  const Index m = B.rows(), n = B.cols();
  eigen_assert(R.rows() == n && R.cols() == n);
  if (m == 0 || n == 0) return;
#ifdef RCPU_HAVE_BLAS
  if (product_kernels() == ProductKernels::blas && blas_fits(m, n, R.outerStride(), B.outerStride())) {
    cblas_trmm_(cblas_op(t), int(m), int(n), R.data(), int(std::max<Index>(1, R.outerStride())), B.data(),
                int(std::max<Index>(1, B.outerStride())));
    return;
  }
#endif
  DenseMatrix<S> P(m, n);
  if (t == Op::none)
    P.noalias() = B * R.template triangularView<Eigen::Upper>();
  else
    P.noalias() = B * R.template triangularView<Eigen::Upper>().transpose();
  B = P;
}

/// Copies the strictly lower triangle of a square matrix onto its upper one.
template <typename S>
void symmetrize_lower(MatRef<S> C) {
  const Index n = C.rows();
  // Column blocks keep both the read (rows of the lower part) and the write in cache.
  constexpr Index bs = 64;
  for (Index j0 = 0; j0 < n; j0 += bs) {
    const Index jb = std::min(bs, n - j0);
    for (Index i0 = 0; i0 < j0 + jb; i0 += bs) {
      const Index ib = std::min(bs, n - i0);
      for (Index j = j0; j < j0 + jb; ++j)
        for (Index i = i0; i < std::min(i0 + ib, j); ++i) C(i, j) = C(j, i);
    }
  }
}

}  // namespace detail
}  // namespace rcpu

#endif  // RCPU_DETAIL_BLAS_HPP
