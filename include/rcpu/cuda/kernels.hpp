// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_KERNELS_HPP
#define RCPU_CUDA_KERNELS_HPP

/// \file cuda/kernels.hpp
/// Internal: launchers of the backend's few kernels, defined in src/cuda/kernels.cu and compiled into
/// the rcpu::cuda library by nvcc. Everything else in the backend is host code calling cuBLAS and
/// cuSOLVER. Each launcher enqueues on `stream` and returns the launch status (cudaGetLastError).
/// Matrices are column-major with a leading dimension; index arrays are device arrays of int64.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "types.hpp"

namespace rcpu {
namespace cuda {
namespace detail {
namespace kernels {

/// Device scratch (in doubles) that block_moments() needs for a block of this shape.
std::size_t moments_scratch(std::int64_t tokens, std::int64_t channels, StorageOrder order);

/// Per-channel moments of a tokens x channels block, accumulated in double: sum, sum |x|, sum x^2,
/// the block mean, and m2 = sum (x - block mean)^2 (two passes over the block, so that m2 stays
/// accurate when |mean| >> std). Each output has `channels` entries. `scratch` has
/// moments_scratch() doubles.
cudaError_t block_moments(const void* x, DataType type, StorageOrder order, std::int64_t tokens,
                          std::int64_t channels, std::int64_t ld, double* scratch, double* sum, double* abs_sum,
                          double* sq_sum, double* mean, double* m2, cudaStream_t stream);

/// Adds the moments of nb tokens (sums, mean, m2) to an accumulator of na tokens: sums add, mean and
/// m2 combine with Chan, Golub & LeVeque's rule. `b_mean` may be null (then b_sum / nb is used).
cudaError_t merge_moments(std::int64_t channels, double na, float* sum, float* abs_sum, float* sq_sum, float* mean,
                          float* m2, double nb, const double* b_sum, const double* b_abs, const double* b_sq,
                          const double* b_mean, const double* b_m2, cudaStream_t stream);
cudaError_t merge_moments(std::int64_t channels, double na, double* sum, double* abs_sum, double* sq_sum,
                          double* mean, double* m2, double nb, const double* b_sum, const double* b_abs,
                          const double* b_sq, const double* b_mean, const double* b_m2, cudaStream_t stream);
cudaError_t merge_moments(std::int64_t channels, double na, float* sum, float* abs_sum, float* sq_sum, float* mean,
                          float* m2, double nb, const float* b_sum, const float* b_abs, const float* b_sq,
                          const float* b_mean, const float* b_m2, cudaStream_t stream);

/// dst(i, j) = src(i, j) for a rows x cols block, converting between any DataType and f32 / f64.
cudaError_t convert(const void* src, DataType src_type, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                    void* dst, DataType dst_type, std::int64_t ld_dst, cudaStream_t stream);

/// Copies the lower triangle of the n x n matrix a onto its upper triangle.
cudaError_t symmetrize_lower(float* a, std::int64_t n, std::int64_t ld, cudaStream_t stream);
cudaError_t symmetrize_lower(double* a, std::int64_t n, std::int64_t ld, cudaStream_t stream);

/// b(i, j) = a(rows[i], cols[j]) for i < nrows, j < ncols; a null `rows` (or `cols`) is the identity.
cudaError_t gather(const float* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, float* b, std::int64_t ldb, cudaStream_t stream);
cudaError_t gather(const double* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, double* b, std::int64_t ldb, cudaStream_t stream);
cudaError_t gather(const double* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, float* b, std::int64_t ldb, cudaStream_t stream);
cudaError_t gather(const float* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, double* b, std::int64_t ldb, cudaStream_t stream);

/// a(i, j) *= row_scale[i] * col_scale[j]; either scale may be null (then 1).
cudaError_t scale(float* a, std::int64_t lda, std::int64_t rows, std::int64_t cols, const float* row_scale,
                  const float* col_scale, cudaStream_t stream);
cudaError_t scale(double* a, std::int64_t lda, std::int64_t rows, std::int64_t cols, const double* row_scale,
                  const double* col_scale, cudaStream_t stream);

/// signs[i] = (r(i, i) < 0 ? -1 : 1) for i < n.
cudaError_t diagonal_signs(const float* r, std::int64_t ld, std::int64_t n, float* signs, cudaStream_t stream);
cudaError_t diagonal_signs(const double* r, std::int64_t ld, std::int64_t n, double* signs, cudaStream_t stream);

/// a(i, i) += value for i < n.
cudaError_t add_to_diagonal(float* a, std::int64_t ld, std::int64_t n, float value, cudaStream_t stream);
cudaError_t add_to_diagonal(double* a, std::int64_t ld, std::int64_t n, double value, cudaStream_t stream);

/// Number of doubles of the `partials` scratch of dot().
constexpr std::size_t dot_partials = 256;

/// *result = sum_ij a(i, j) b(i, j), accumulated in double, deterministic (fixed reduction order).
cudaError_t dot(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t rows,
                std::int64_t cols, double* partials, double* result, cudaStream_t stream);
cudaError_t dot(const double* a, std::int64_t lda, const double* b, std::int64_t ldb, std::int64_t rows,
                std::int64_t cols, double* partials, double* result, cudaStream_t stream);

/// Per column j of w: abs_sums[j] = sum_i |w(i, j)|, sq_sums[j] = sum_i w(i, j)^2, in double.
cudaError_t column_norms(const float* w, std::int64_t ld, std::int64_t rows, std::int64_t cols, double* abs_sums,
                         double* sq_sums, cudaStream_t stream);
cudaError_t column_norms(const double* w, std::int64_t ld, std::int64_t rows, std::int64_t cols, double* abs_sums,
                         double* sq_sums, cudaStream_t stream);

}  // namespace kernels
}  // namespace detail
}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_KERNELS_HPP
