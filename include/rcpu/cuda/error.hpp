// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_ERROR_HPP
#define RCPU_CUDA_ERROR_HPP

/// \file cuda/error.hpp
/// Failures of the CUDA runtime, cuBLAS and cuSOLVER become `rcpu::cuda::Error`, which carries the
/// library, the numeric status, its name and the call that returned it. Bad input is still
/// `rcpu::invalid_argument` (checked on the host before anything runs), and numerical trouble
/// (cuSOLVER's info > 0: no convergence, a matrix that is not positive definite) is still reported as
/// `rcpu::Info` in results, as on the CPU.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <stdexcept>
#include <string>
#include <utility>

#include "config.hpp"

namespace rcpu {
namespace cuda {

/// Which library a failed call belongs to.
enum class Library {
  runtime,  ///< the CUDA runtime API (cudaMalloc, cudaMemcpyAsync, kernel launches, ...)
  cublas,   ///< cuBLAS
  cusolver  ///< cuSOLVER (a returned status, or a negative `info`: an invalid argument)
};

inline const char* to_string(Library library) {
  switch (library) {
    case Library::runtime: return "CUDA runtime";
    case Library::cublas: return "cuBLAS";
    case Library::cusolver: return "cuSOLVER";
  }
  return "unknown library";
}

/// Name of a CUDA runtime status, e.g. "cudaErrorNoDevice".
inline const char* status_name(cudaError_t status) { return cudaGetErrorName(status); }

/// Name of a cuBLAS status, e.g. "CUBLAS_STATUS_INVALID_VALUE".
inline const char* status_name(cublasStatus_t status) { return cublasGetStatusName(status); }

/// Name of a cuSOLVER status, e.g. "CUSOLVER_STATUS_INVALID_VALUE" (cuSOLVER has no such function).
inline const char* status_name(cusolverStatus_t status) {
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT: return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "CUSOLVER_STATUS_<other>";
  }
}

/// A failed CUDA runtime, cuBLAS or cuSOLVER call. what() reads, for example,
/// "rcpu::cuda: cuBLAS call cublasSgemm_v2_64(...) failed: CUBLAS_STATUS_INVALID_VALUE (7) [at file:line]".
class Error : public std::runtime_error {
 public:
  /// \param library    the library of the call
  /// \param code       its numeric status (or cuSOLVER's negative info)
  /// \param code_name  the status' name
  /// \param call       the call as written (or the routine's name)
  /// \param detail     extra text (the runtime's description, the source location); may be empty
  Error(Library library, int code, std::string code_name, std::string call, const std::string& detail = {})
      : std::runtime_error(format(library, code, code_name, call, detail)),
        m_library(library),
        m_code(code),
        m_code_name(std::move(code_name)),
        m_call(std::move(call)) {}

  Library library() const noexcept { return m_library; }
  int code() const noexcept { return m_code; }
  const std::string& code_name() const noexcept { return m_code_name; }
  const std::string& call() const noexcept { return m_call; }

 private:
  static std::string format(Library library, int code, const std::string& code_name, const std::string& call,
                            const std::string& detail) {
    std::string s = "rcpu::cuda: ";
    s += to_string(library);
    s += " call ";
    s += call;
    s += " failed: ";
    s += code_name;
    s += " (";
    s += std::to_string(code);
    s += ")";
    if (!detail.empty()) {
      s += " ";
      s += detail;
    }
    return s;
  }

  Library m_library;
  int m_code;
  std::string m_code_name;
  std::string m_call;
};

namespace detail {

inline std::string where(const char* file, int line) {
  std::string f = file ? file : "";
  const std::size_t slash = f.find_last_of("/\\");
  if (slash != std::string::npos) f = f.substr(slash + 1);
  return "[at " + f + ":" + std::to_string(line) + "]";
}

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so that it is not reported again by a later check
  throw Error(Library::runtime, int(status), status_name(status), call,
              std::string("(") + cudaGetErrorString(status) + ") " + where(file, line));
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(Library::cublas, int(status), status_name(status), call, where(file, line));
}

inline void check(cusolverStatus_t status, const char* call, const char* file, int line) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  throw Error(Library::cusolver, int(status), status_name(status), call, where(file, line));
}

/// cuSOLVER's info < 0 means "argument -info is wrong": a bug in rcpu, reported as an Error.
/// (info > 0 is numerical, and each caller turns it into an rcpu::Info.)
inline void check_info_argument(int info, const char* routine) {
  if (info >= 0) return;
  throw Error(Library::cusolver, info, "invalid argument " + std::to_string(-info), routine,
              "(cuSOLVER rejected an argument; please report this as an rcpu bug)");
}

}  // namespace detail
}  // namespace cuda
}  // namespace rcpu

/// Checks a CUDA runtime, cuBLAS or cuSOLVER status and throws rcpu::cuda::Error on failure.
#define RCPU_CUDA_CHECK(call) ::rcpu::cuda::detail::check((call), #call, __FILE__, __LINE__)

#endif  // RCPU_CUDA_ERROR_HPP
