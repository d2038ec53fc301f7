// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_CONFIG_HPP
#define RCPU_CONFIG_HPP

/// \file config.hpp
/// Version of the library and the one Eigen version it is written against.

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

namespace rcpu {

/// Index type used for sizes and column indices (Eigen's).
using Index = Eigen::Index;

}  // namespace rcpu

#endif  // RCPU_CONFIG_HPP
