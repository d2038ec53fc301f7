// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_DETAIL_CHECKS_HPP
#define RCPU_CUDA_DETAIL_CHECKS_HPP

// Internal: input validation of the CUDA backend. Bad input throws rcpu::invalid_argument (the CPU
// library's public error type) with a message naming the argument and the shapes; these helpers are
// the backend's own, so that it depends only on the CPU library's public API.

#include "../../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <string>
#include <vector>

#include "../../config.hpp"
#include "../../error.hpp"

namespace rcpu {
namespace cuda {
namespace detail {

[[noreturn]] inline void fail(const std::string& message) { throw rcpu::invalid_argument(message); }

inline void require(bool ok, const std::string& message) {
  if (!ok) fail(message);
}

inline std::string shape(Index rows, Index cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

inline void require_ratio(double ratio, const std::string& name) {
  require(ratio >= 0.0 && ratio < 1.0, name + " = " + std::to_string(ratio) + " is outside [0, 1)");
}

/// Non-empty, in [0, n), no repeats; order is free.
inline void require_kept_set(const std::vector<Index>& kept, Index n, const std::string& name) {
  require(!kept.empty(), name + " is empty: at least one column must be kept (of " + std::to_string(n) + ")");
  std::vector<char> seen(std::size_t(n > 0 ? n : 0), 0);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const Index j = kept[i];
    require(j >= 0 && j < n, name + "[" + std::to_string(i) + "] = " + std::to_string(j) + " is out of range [0, " +
                                 std::to_string(n) + ")");
    require(!seen[std::size_t(j)], name + " repeats index " + std::to_string(j) + " (at position " +
                                       std::to_string(i) + ")");
    seen[std::size_t(j)] = 1;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_DETAIL_CHECKS_HPP
