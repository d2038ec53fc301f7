// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_CONFIG_HPP
#define RCPU_CONFIG_HPP

/// \file config.hpp
/// Version of the library and the one Eigen version it is written against.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <Eigen/Core>

#define RCPU_VERSION_MAJOR 0
#define RCPU_VERSION_MINOR 1
#define RCPU_VERSION_PATCH 0

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "rcpu needs Eigen 3.4 or newer (it uses Eigen 3.4's index-list slicing)"
#endif

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "rcpu needs C++17"
#endif

// Optional fast paths (docs/performance.md). CMake's RCPU_USE_BLAS puts both macros on the rcpu
// target when OpenBLAS (or another CBLAS) and LAPACKE are found; a vendored copy defines them by hand
// and links the libraries. They must be the same in every translation unit of a program.
//   RCPU_USE_BLAS     cblas_?syrk / cblas_?gemm for the Gram and the large products (needs <cblas.h>)
//   RCPU_USE_LAPACKE  LAPACKE for the factorizations: Procrustes, Cholesky (needs <lapacke.h>)
//   RCPU_NO_BLAS      overrides both: pure Eigen whatever else is defined (used by rcpu's own tests)
#if defined(RCPU_USE_BLAS) && !defined(RCPU_NO_BLAS)
#define RCPU_HAVE_BLAS 1
#endif
#if defined(RCPU_USE_LAPACKE) && !defined(RCPU_NO_BLAS)
#define RCPU_HAVE_LAPACKE 1
#endif

namespace rcpu {

/// Index type used for sizes and column indices (Eigen's).
using Index = Eigen::Index;

/// Which fast paths this translation unit was compiled with: "cblas+lapacke", "cblas", "lapacke" or
/// "eigen" (pure Eigen).
inline const char* backend() {
#if defined(RCPU_HAVE_BLAS) && defined(RCPU_HAVE_LAPACKE)
  return "cblas+lapacke";
#elif defined(RCPU_HAVE_BLAS)
  return "cblas";
#elif defined(RCPU_HAVE_LAPACKE)
  return "lapacke";
#else
  return "eigen";
#endif
}

}  // namespace rcpu

#endif  // RCPU_CONFIG_HPP
