// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_MEMORY_HPP
#define RCPU_CUDA_MEMORY_HPP

/// \file cuda/memory.hpp
/// Device memory: an owning RAII buffer, column-major device matrices (the layout of Eigen, cuBLAS
/// and cuSOLVER), non-owning views over memory that someone else owns (e.g. a PyTorch tensor), and
/// token blocks for the statistics.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/checks.hpp"
#include "context.hpp"
#include "error.hpp"

namespace rcpu {
namespace cuda {

/// The DataType of a C++ scalar (float or double).
template <typename T>
constexpr DataType data_type_of() {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "rcpu::cuda: float and double are the scalars of device matrices");
  return std::is_same<T, float>::value ? DataType::f32 : DataType::f64;
}

/// Owning, uninitialised device allocation of `count` elements of T (cudaMalloc / cudaFree).
/// Allocates on the current device: the backend's entry points make their Context's device current.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// \throws rcpu::cuda::Error (cudaErrorMemoryAllocation) when the device is out of memory.
  explicit DeviceBuffer(std::size_t count) { allocate(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : m_ptr(std::exchange(o.m_ptr, nullptr)), m_count(std::exchange(o.m_count, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      m_ptr = std::exchange(o.m_ptr, nullptr);
      m_count = std::exchange(o.m_count, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() noexcept { return m_ptr; }
  const T* data() const noexcept { return m_ptr; }
  std::size_t size() const noexcept { return m_count; }
  bool empty() const noexcept { return m_count == 0; }

  /// Makes room for at least `count` elements; the contents are lost when it grows.
  void reserve(std::size_t count) {
    if (count <= m_count) return;
    release();
    allocate(count);
  }

 private:
  void allocate(std::size_t count) {
    if (count == 0) return;
    detail::require(count <= std::numeric_limits<std::size_t>::max() / sizeof(T),
                          "cuda::DeviceBuffer: " + std::to_string(count) + " elements overflow size_t");
    void* p = nullptr;
    RCPU_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
    m_ptr = static_cast<T*>(p);
    m_count = count;
  }
  void release() noexcept {
    if (m_ptr) (void)cudaFree(m_ptr);
    m_ptr = nullptr;
    m_count = 0;
  }

  T* m_ptr = nullptr;
  std::size_t m_count = 0;
};

/// A non-owning column-major matrix in device memory: element (i, j) at data[i + j * ld].
/// `T` may be const-qualified for read-only views.
template <typename T>
struct MatrixView {
  T* data = nullptr;
  Index rows = 0;
  Index cols = 0;
  Index ld = 0;  ///< leading dimension (>= rows)

  MatrixView() = default;
  /// \param ld  leading dimension; 0 means `rows` (contiguous columns; 1 for an empty matrix)
  MatrixView(T* data_, Index rows_, Index cols_, Index ld_ = 0)
      : data(data_), rows(rows_), cols(cols_), ld(ld_ > 0 ? ld_ : std::max<Index>(rows_, 1)) {}
  /// A mutable view converts to a read-only one.
  template <typename U, typename = std::enable_if_t<std::is_same<const U, T>::value && !std::is_same<U, T>::value>>
  MatrixView(const MatrixView<U>& o) : data(o.data), rows(o.rows), cols(o.cols), ld(o.ld) {}

  bool empty() const { return rows == 0 || cols == 0; }
  bool contiguous() const { return ld == rows || cols <= 1; }
  /// Column j (a rows x 1 view).
  MatrixView col(Index j) const { return MatrixView(data + j * ld, rows, 1, ld); }
};

namespace detail {

/// Throws rcpu::invalid_argument unless `v` is a usable device matrix view.
template <typename T>
void check_view(const MatrixView<T>& v, const std::string& name) {
  detail::require(v.rows >= 0 && v.cols >= 0, name + ": negative shape " + detail::shape(v.rows, v.cols));
  detail::require(v.ld >= std::max<Index>(v.rows, 1), name + " (" + detail::shape(v.rows, v.cols) +
                                                              ") has leading dimension " + std::to_string(v.ld) +
                                                              " < rows");
  detail::require(v.data != nullptr || v.rows == 0 || v.cols == 0,
                        name + " (" + detail::shape(v.rows, v.cols) + ") has a null data pointer");
  detail::require(v.rows <= std::numeric_limits<std::int32_t>::max() &&
                            v.cols <= std::numeric_limits<std::int32_t>::max(),
                        name + " (" + detail::shape(v.rows, v.cols) + ") is too large for cuSOLVER (2^31 - 1 per dimension)");
}

inline void upload_bytes(const Context& ctx, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  RCPU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream()));
}

inline void download_bytes(const Context& ctx, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  RCPU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
}

/// Copies a rows x cols column-major block between device (or host) memories with given leading dims.
template <typename T>
void copy_2d(const Context& ctx, T* dst, Index ld_dst, const T* src, Index ld_src, Index rows, Index cols,
             cudaMemcpyKind kind) {
  if (rows == 0 || cols == 0) return;
  RCPU_CUDA_CHECK(cudaMemcpy2DAsync(dst, std::size_t(ld_dst) * sizeof(T), src, std::size_t(ld_src) * sizeof(T),
                                    std::size_t(rows) * sizeof(T), std::size_t(cols), kind, ctx.stream()));
}

/// Uploads a host vector into a new device buffer.
template <typename T>
DeviceBuffer<T> upload_vector(const Context& ctx, const std::vector<T>& v) {
  DeviceBuffer<T> b(v.size());
  upload_bytes(ctx, b.data(), v.data(), v.size() * sizeof(T));
  return b;
}

/// Uploads an Eigen vector into a new device buffer of scalar T.
template <typename T, typename Derived>
DeviceBuffer<T> upload_vector(const Context& ctx, const Eigen::MatrixBase<Derived>& v) {
  const Eigen::Matrix<T, Eigen::Dynamic, 1> h = v.template cast<T>();
  DeviceBuffer<T> b(std::size_t(h.size()));
  upload_bytes(ctx, b.data(), h.data(), std::size_t(h.size()) * sizeof(T));
  return b;
}

/// Downloads `n` device elements into an Eigen vector of doubles (synchronises).
template <typename T>
Eigen::VectorXd download_vector(const Context& ctx, const T* p, Index n) {
  Eigen::Matrix<T, Eigen::Dynamic, 1> h(n);
  download_bytes(ctx, h.data(), p, std::size_t(n) * sizeof(T));
  return h.template cast<double>();
}

}  // namespace detail

/// An owning column-major matrix in device memory, contiguous (ld = rows).
template <typename T>
class DeviceMatrix {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "rcpu::cuda::DeviceMatrix holds float or double");

 public:
  using Scalar = T;
  using HostMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

  DeviceMatrix() = default;
  /// Uninitialised rows x cols matrix on the current device (use inside a Context's activate()).
  DeviceMatrix(Index rows, Index cols) { resize(rows, cols); }
  /// Uninitialised rows x cols matrix on `ctx`'s device.
  DeviceMatrix(const Context& ctx, Index rows, Index cols) {
    const ScopedDevice on(ctx.device());
    resize(rows, cols);
  }

  /// Copies a host matrix (any Eigen expression; cast to T) to `ctx`'s device.
  template <typename Derived>
  static DeviceMatrix from_host(const Context& ctx, const Eigen::MatrixBase<Derived>& m) {
    const ScopedDevice on(ctx.device());
    DeviceMatrix d(m.rows(), m.cols());
    using Ref = Eigen::Ref<const HostMatrix, 0, Eigen::OuterStride<>>;
    const Ref r(m.derived().template cast<T>());
    detail::copy_2d(ctx, d.data(), d.ld(), r.data(), r.outerStride(), r.rows(), r.cols(), cudaMemcpyHostToDevice);
    ctx.synchronize();  // the source may be a temporary of this function
    return d;
  }

  /// Copies a device view (any leading dimension) into a new contiguous matrix.
  static DeviceMatrix copy_of(const Context& ctx, MatrixView<const T> v) {
    detail::check_view(v, "cuda::DeviceMatrix::copy_of: source");
    const ScopedDevice on(ctx.device());
    DeviceMatrix d(v.rows, v.cols);
    detail::copy_2d(ctx, d.data(), d.ld(), v.data, v.ld, v.rows, v.cols, cudaMemcpyDeviceToDevice);
    return d;
  }

  /// Downloads to a host matrix (synchronises the stream).
  HostMatrix to_host(const Context& ctx) const {
    HostMatrix h(m_rows, m_cols);
    const ScopedDevice on(ctx.device());
    detail::copy_2d(ctx, h.data(), m_rows, data(), ld(), m_rows, m_cols, cudaMemcpyDeviceToHost);
    ctx.synchronize();
    return h;
  }

  /// Sets every element to zero (asynchronously, on ctx's stream).
  void set_zero(const Context& ctx) {
    if (size() == 0) return;
    const ScopedDevice on(ctx.device());
    RCPU_CUDA_CHECK(cudaMemsetAsync(data(), 0, std::size_t(size()) * sizeof(T), ctx.stream()));
  }

  /// Reallocates when the size changes; contents are then undefined.
  void resize(Index rows, Index cols) {
    detail::require(rows >= 0 && cols >= 0, "cuda::DeviceMatrix: negative shape " + detail::shape(rows, cols));
    if (rows * cols != m_rows * m_cols) m_buffer = DeviceBuffer<T>(std::size_t(rows) * std::size_t(cols));
    m_rows = rows;
    m_cols = cols;
  }

  T* data() noexcept { return m_buffer.data(); }
  const T* data() const noexcept { return m_buffer.data(); }
  Index rows() const noexcept { return m_rows; }
  Index cols() const noexcept { return m_cols; }
  Index ld() const noexcept { return std::max<Index>(m_rows, 1); }
  Index size() const noexcept { return m_rows * m_cols; }
  bool empty() const noexcept { return size() == 0; }

  MatrixView<T> view() noexcept { return MatrixView<T>(data(), m_rows, m_cols, ld()); }
  MatrixView<const T> view() const noexcept { return MatrixView<const T>(data(), m_rows, m_cols, ld()); }
  operator MatrixView<const T>() const noexcept { return view(); }

 private:
  DeviceBuffer<T> m_buffer;
  Index m_rows = 0;
  Index m_cols = 0;
};

using DeviceMatrixf = DeviceMatrix<float>;
using DeviceMatrixd = DeviceMatrix<double>;

/// A block of calibration tokens in device memory: `tokens` x `channels`, in float, double, half or
/// bfloat16, stored row-major (token after token, e.g. a contiguous PyTorch activation) or
/// column-major (channel after channel, e.g. a DeviceMatrix with one row per token).
struct TokenBlock {
  const void* data = nullptr;
  DataType type = DataType::f32;
  Index tokens = 0;
  Index channels = 0;
  /// Distance in elements between consecutive tokens (row_major, >= channels) or channels
  /// (col_major, >= tokens).
  Index ld = 0;
  StorageOrder order = StorageOrder::row_major;

  /// A row-major block; ld = 0 means contiguous (ld = channels).
  static TokenBlock row_major(const void* data, DataType type, Index tokens, Index channels, Index ld = 0) {
    return TokenBlock{data, type, tokens, channels, ld > 0 ? ld : channels, StorageOrder::row_major};
  }
  /// A column-major block; ld = 0 means contiguous (ld = tokens).
  static TokenBlock col_major(const void* data, DataType type, Index tokens, Index channels, Index ld = 0) {
    return TokenBlock{data, type, tokens, channels, ld > 0 ? ld : tokens, StorageOrder::col_major};
  }
  /// A device matrix with one row per token (as rcpu::Statistics::update takes on the CPU).
  template <typename T>
  static TokenBlock from(MatrixView<const T> m) {
    return col_major(m.data, data_type_of<T>(), m.rows, m.cols, m.ld);
  }
};

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_MEMORY_HPP
