// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_DETAIL_LINALG_HPP
#define RCPU_CUDA_DETAIL_LINALG_HPP

// Internal: typed float/double wrappers over the cuBLAS and cuSOLVER calls the backend makes (64-bit
// cuBLAS API; cuSOLVER's generic 64-bit API where it exists), a workspace for cuSOLVER, and batched
// double-precision dot products. Every status is checked; cuSOLVER's device `info` is read back with
// read_info().

#include "../../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "../context.hpp"
#include "../error.hpp"
#include "../kernels.hpp"
#include "../memory.hpp"

namespace rcpu {
namespace cuda {
namespace detail {

template <typename T>
constexpr cudaDataType cuda_type() {
  return std::is_same<T, float>::value ? CUDA_R_32F : CUDA_R_64F;
}

// Checks a kernel launcher's status.
#define RCPU_CUDA_LAUNCH(call) RCPU_CUDA_CHECK(call)

// ---------------------------------------------------------------------------------------------
// cuBLAS (column-major; host pointer mode for alpha and beta).

inline void gemm(const Context& c, cublasOperation_t ta, cublasOperation_t tb, Index m, Index n, Index k, float alpha,
                 const float* A, Index lda, const float* B, Index ldb, float beta, float* C, Index ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) throw std::logic_error("rcpu::cuda internal: gemm with k = 0");
  RCPU_CUDA_CHECK(cublasSgemm_v2_64(c.cublas(), ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
}
inline void gemm(const Context& c, cublasOperation_t ta, cublasOperation_t tb, Index m, Index n, Index k, double alpha,
                 const double* A, Index lda, const double* B, Index ldb, double beta, double* C, Index ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) throw std::logic_error("rcpu::cuda internal: gemm with k = 0");
  RCPU_CUDA_CHECK(cublasDgemm_v2_64(c.cublas(), ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
}

/// C (n x n, lower triangle) = alpha op(A) op(A)^T + beta C; op(A) is n x k.
inline void syrk(const Context& c, cublasOperation_t trans, Index n, Index k, float alpha, const float* A, Index lda,
                 float beta, float* C, Index ldc) {
  if (n == 0 || k == 0) return;
  RCPU_CUDA_CHECK(cublasSsyrk_v2_64(c.cublas(), CUBLAS_FILL_MODE_LOWER, trans, n, k, &alpha, A, lda, &beta, C, ldc));
}
inline void syrk(const Context& c, cublasOperation_t trans, Index n, Index k, double alpha, const double* A, Index lda,
                 double beta, double* C, Index ldc) {
  if (n == 0 || k == 0) return;
  RCPU_CUDA_CHECK(cublasDsyrk_v2_64(c.cublas(), CUBLAS_FILL_MODE_LOWER, trans, n, k, &alpha, A, lda, &beta, C, ldc));
}

/// C = alpha op(A) + beta op(B) (m x n). In place is allowed for C == A (op N, lda == ldc).
inline void geam(const Context& c, cublasOperation_t ta, cublasOperation_t tb, Index m, Index n, float alpha,
                 const float* A, Index lda, float beta, const float* B, Index ldb, float* C, Index ldc) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasSgeam_64(c.cublas(), ta, tb, m, n, &alpha, A, lda, &beta, B, ldb, C, ldc));
}
inline void geam(const Context& c, cublasOperation_t ta, cublasOperation_t tb, Index m, Index n, double alpha,
                 const double* A, Index lda, double beta, const double* B, Index ldb, double* C, Index ldc) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasDgeam_64(c.cublas(), ta, tb, m, n, &alpha, A, lda, &beta, B, ldb, C, ldc));
}

/// y = alpha op(A) x + beta y, A is m x n.
inline void gemv(const Context& c, cublasOperation_t ta, Index m, Index n, float alpha, const float* A, Index lda,
                 const float* x, float beta, float* y) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasSgemv_v2_64(c.cublas(), ta, m, n, &alpha, A, lda, x, 1, &beta, y, 1));
}
inline void gemv(const Context& c, cublasOperation_t ta, Index m, Index n, double alpha, const double* A, Index lda,
                 const double* x, double beta, double* y) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasDgemv_v2_64(c.cublas(), ta, m, n, &alpha, A, lda, x, 1, &beta, y, 1));
}

/// A += alpha x y^T (m x n), with strides of x and y.
inline void ger(const Context& c, Index m, Index n, float alpha, const float* x, Index incx, const float* y, Index incy,
                float* A, Index lda) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasSger_v2_64(c.cublas(), m, n, &alpha, x, incx, y, incy, A, lda));
}
inline void ger(const Context& c, Index m, Index n, double alpha, const double* x, Index incx, const double* y,
                Index incy, double* A, Index lda) {
  if (m == 0 || n == 0) return;
  RCPU_CUDA_CHECK(cublasDger_v2_64(c.cublas(), m, n, &alpha, x, incx, y, incy, A, lda));
}

/// x *= alpha for n contiguous elements.
inline void scal(const Context& c, Index n, float alpha, float* x) {
  if (n == 0) return;
  RCPU_CUDA_CHECK(cublasSscal_v2_64(c.cublas(), n, &alpha, x, 1));
}
inline void scal(const Context& c, Index n, double alpha, double* x) {
  if (n == 0) return;
  RCPU_CUDA_CHECK(cublasDscal_v2_64(c.cublas(), n, &alpha, x, 1));
}

/// y[i * incy] = x[i * incx] for i < n.
inline void copy(const Context& c, Index n, const float* x, Index incx, float* y, Index incy) {
  if (n == 0) return;
  RCPU_CUDA_CHECK(cublasScopy_v2_64(c.cublas(), n, x, incx, y, incy));
}
inline void copy(const Context& c, Index n, const double* x, Index incx, double* y, Index incy) {
  if (n == 0) return;
  RCPU_CUDA_CHECK(cublasDcopy_v2_64(c.cublas(), n, x, incx, y, incy));
}

// ---------------------------------------------------------------------------------------------
// cuSOLVER helpers.

/// Device and host workspace plus the device `info` integer of one cuSOLVER call.
struct SolverWorkspace {
  DeviceBuffer<unsigned char> device;
  std::vector<unsigned char> host;
  DeviceBuffer<int> info{1};

  void reserve(std::size_t device_bytes, std::size_t host_bytes) {
    device.reserve(device_bytes);
    if (host.size() < host_bytes) host.resize(host_bytes);
  }
  void* device_ptr() { return device.size() ? static_cast<void*>(device.data()) : nullptr; }
  void* host_ptr() { return host.empty() ? nullptr : static_cast<void*>(host.data()); }
};

/// Reads cuSOLVER's device info after the call (synchronises); a negative value is thrown as an Error.
inline int read_info(const Context& c, const int* d_info, const char* routine) {
  int info = 0;
  download_bytes(c, &info, d_info, sizeof(int));
  check_info_argument(info, routine);
  return info;
}

/// Copies a view into a new contiguous matrix of type Out (converting float <-> double if needed).
template <typename Out, typename In>
DeviceMatrix<Out> convert_copy(const Context& c, MatrixView<const In> v) {
  DeviceMatrix<Out> out(v.rows, v.cols);
  if (v.empty()) return out;
  if constexpr (std::is_same<In, Out>::value) {
    copy_2d(c, out.data(), out.ld(), v.data, v.ld, v.rows, v.cols, cudaMemcpyDeviceToDevice);
  } else {
    RCPU_CUDA_LAUNCH(kernels::convert(v.data, data_type_of<In>(), v.rows, v.cols, v.ld, out.data(), data_type_of<Out>(),
                                      out.ld(), c.stream()));
  }
  return out;
}

/// Downloads the diagonal of an n x n device matrix (synchronises).
template <typename T>
Eigen::VectorXd download_diagonal(const Context& c, const T* a, Index n, Index ld) {
  DeviceBuffer<T> d(static_cast<std::size_t>(n));
  copy(c, n, a, ld + 1, d.data(), 1);
  return download_vector(c, d.data(), n);
}

// ---------------------------------------------------------------------------------------------
// Frobenius inner products <A, B> = sum_ij A_ij B_ij accumulated in double, collected in device
// slots and read back together (one synchronisation for a batch).

class DotBatch {
 public:
  DotBatch(const Context& c, std::size_t slots) : m_ctx(c), m_partials(kernels::dot_partials), m_results(slots) {
    if (slots) RCPU_CUDA_CHECK(cudaMemsetAsync(m_results.data(), 0, slots * sizeof(double), c.stream()));
  }
  /// Enqueues slot = <A, B> for two rows x cols views with their own leading dimensions.
  template <typename T>
  void enqueue(std::size_t slot, MatrixView<const T> A, MatrixView<const T> B) {
    if (slot >= m_results.size()) throw std::logic_error("rcpu::cuda internal: DotBatch slot out of range");
    if (A.rows != B.rows || A.cols != B.cols) throw std::logic_error("rcpu::cuda internal: DotBatch shapes differ");
    if (A.empty()) return;  // the slot stays 0
    RCPU_CUDA_LAUNCH(kernels::dot(A.data, A.ld, B.data, B.ld, A.rows, A.cols, m_partials.data(),
                                  m_results.data() + slot, m_ctx.stream()));
  }
  /// Reads every slot (synchronises).
  std::vector<double> fetch() const {
    std::vector<double> out(m_results.size());
    download_bytes(m_ctx, out.data(), m_results.data(), out.size() * sizeof(double));
    return out;
  }

 private:
  const Context& m_ctx;
  DeviceBuffer<double> m_partials;
  DeviceBuffer<double> m_results;
};

/// <A, B> in double, read back at once.
template <typename T>
double frobenius_dot(const Context& c, MatrixView<const T> A, MatrixView<const T> B) {
  DotBatch batch(c, 1);
  batch.enqueue<T>(0, A, B);
  return batch.fetch()[0];
}

/// Gathers b = a(rows, cols) into a new matrix of type Out; rows/cols are device index arrays (null
/// means all rows / all columns of a).
template <typename Out, typename In>
DeviceMatrix<Out> gather(const Context& c, MatrixView<const In> a, const std::int64_t* rows, Index nrows,
                         const std::int64_t* cols, Index ncols) {
  DeviceMatrix<Out> b(nrows, ncols);
  if (b.empty()) return b;
  RCPU_CUDA_LAUNCH(kernels::gather(a.data, a.ld, rows, nrows, cols, ncols, b.data(), b.ld(), c.stream()));
  return b;
}

/// A host index set as a device int64 array.
inline DeviceBuffer<std::int64_t> upload_indices(const Context& c, const std::vector<Index>& idx) {
  std::vector<std::int64_t> v(idx.begin(), idx.end());
  return upload_vector(c, v);
}

}  // namespace detail
}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_DETAIL_LINALG_HPP
