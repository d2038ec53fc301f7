// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_CONTEXT_HPP
#define RCPU_CUDA_CONTEXT_HPP

/// \file cuda/context.hpp
/// The device, stream and library handles every GPU operation of rcpu runs on.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <memory>
#include <string>

#include "config.hpp"
#include "detail/checks.hpp"
#include "error.hpp"

namespace rcpu {
namespace cuda {

/// Number of CUDA devices this process can use; 0 when there is none or no usable driver. Never throws.
inline int device_count() noexcept {
  int n = 0;
  const cudaError_t s = cudaGetDeviceCount(&n);
  if (s != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

/// Why device_count() is 0, e.g. "cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device is
/// detected)"; empty when a device is there. Never throws.
inline std::string device_status() {
  int n = 0;
  const cudaError_t s = cudaGetDeviceCount(&n);
  if (s != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorName(s) + " (" + cudaGetErrorString(s) + ")";
  }
  if (n == 0) return "cudaGetDeviceCount: 0 devices";
  return {};
}

/// Makes `device` current for its lifetime and restores the previous device afterwards.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    RCPU_CUDA_CHECK(cudaGetDevice(&m_previous));
    if (m_previous != device) RCPU_CUDA_CHECK(cudaSetDevice(device));
    m_device = device;
  }
  ~ScopedDevice() {
    if (m_previous != m_device) (void)cudaSetDevice(m_previous);
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int m_previous = 0;
  int m_device = 0;
};

struct ContextOptions {
  /// Let cuBLAS run float products on TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH): several times
  /// faster, with 10-bit mantissas inside the products. Off by default: float products are full FP32.
  bool allow_tf32 = false;
};

namespace detail {
struct StreamDeleter {
  void operator()(CUstream_st* s) const noexcept { (void)cudaStreamDestroy(s); }
};
struct CublasDeleter {
  void operator()(cublasContext* h) const noexcept { (void)cublasDestroy(h); }
};
struct CusolverDeleter {
  void operator()(cusolverDnContext* h) const noexcept { (void)cusolverDnDestroy(h); }
};
struct CusolverParamsDeleter {
  void operator()(cusolverDnParams* p) const noexcept { (void)cusolverDnDestroyParams(p); }
};
}  // namespace detail

/// One device, one stream on it, and a cuBLAS and a cuSOLVER handle bound to that stream. Every
/// operation of the backend is enqueued on this stream; functions that return host data synchronise
/// it before they read. Not copyable or movable: objects that use a Context keep a reference to it,
/// so it must outlive them. One Context per host thread (cuBLAS/cuSOLVER handles are not thread-safe).
class Context {
 public:
  /// \param device   CUDA device ordinal
  /// \param options  see ContextOptions
  /// \throws rcpu::cuda::Error when no device is usable (e.g. cudaErrorNoDevice) or a handle cannot be
  ///         created; rcpu::invalid_argument if `device` is out of range.
  explicit Context(int device = 0, const ContextOptions& options = {}) : m_device(device), m_options(options) {
    int n = 0;
    RCPU_CUDA_CHECK(cudaGetDeviceCount(&n));
    if (n == 0) throw Error(Library::runtime, int(cudaErrorNoDevice), "cudaErrorNoDevice", "cudaGetDeviceCount", "(0 devices)");
    detail::require(device >= 0 && device < n, "cuda::Context: device = " + std::to_string(device) +
                                                         " but " + std::to_string(n) + " CUDA device(s) are visible");
    const ScopedDevice on(m_device);
    cudaStream_t s = nullptr;
    RCPU_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    m_stream.reset(s);
    cublasHandle_t b = nullptr;
    RCPU_CUDA_CHECK(cublasCreate(&b));
    m_cublas.reset(b);
    RCPU_CUDA_CHECK(cublasSetStream(b, s));
    RCPU_CUDA_CHECK(cublasSetPointerMode(b, CUBLAS_POINTER_MODE_HOST));
    if (options.allow_tf32) RCPU_CUDA_CHECK(cublasSetMathMode(b, CUBLAS_TF32_TENSOR_OP_MATH));
    cusolverDnHandle_t h = nullptr;
    RCPU_CUDA_CHECK(cusolverDnCreate(&h));
    m_cusolver.reset(h);
    RCPU_CUDA_CHECK(cusolverDnSetStream(h, s));
    cusolverDnParams_t p = nullptr;
    RCPU_CUDA_CHECK(cusolverDnCreateParams(&p));
    m_params.reset(p);
    cudaDeviceProp prop{};
    RCPU_CUDA_CHECK(cudaGetDeviceProperties(&prop, m_device));
    m_name = prop.name;
    m_sm_count = prop.multiProcessorCount;
  }

  ~Context() {
    // Destroy the handles with their device current; never throws.
    int previous = -1;
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != m_device &&
                          cudaSetDevice(m_device) == cudaSuccess;
    if (m_stream) (void)cudaStreamSynchronize(m_stream.get());
    m_params.reset();
    m_cusolver.reset();
    m_cublas.reset();
    m_stream.reset();
    if (switched) (void)cudaSetDevice(previous);
  }

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  Context(Context&&) = delete;
  Context& operator=(Context&&) = delete;

  int device() const noexcept { return m_device; }
  cudaStream_t stream() const noexcept { return m_stream.get(); }
  cublasHandle_t cublas() const noexcept { return m_cublas.get(); }
  cusolverDnHandle_t cusolver() const noexcept { return m_cusolver.get(); }
  cusolverDnParams_t cusolver_params() const noexcept { return m_params.get(); }
  const ContextOptions& options() const noexcept { return m_options; }
  /// The device's name, e.g. "NVIDIA H200".
  const std::string& device_name() const noexcept { return m_name; }
  int multiprocessors() const noexcept { return m_sm_count; }

  /// Waits for everything enqueued on the stream. \throws rcpu::cuda::Error if any of it failed.
  void synchronize() const { RCPU_CUDA_CHECK(cudaStreamSynchronize(m_stream.get())); }

  /// Makes this context's device current until the returned guard is destroyed.
  ScopedDevice activate() const { return ScopedDevice(m_device); }

 private:
  int m_device = 0;
  ContextOptions m_options;
  std::string m_name;
  int m_sm_count = 0;
  std::unique_ptr<CUstream_st, detail::StreamDeleter> m_stream;
  std::unique_ptr<cublasContext, detail::CublasDeleter> m_cublas;
  std::unique_ptr<cusolverDnContext, detail::CusolverDeleter> m_cusolver;
  std::unique_ptr<cusolverDnParams, detail::CusolverParamsDeleter> m_params;
};

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_CONTEXT_HPP
