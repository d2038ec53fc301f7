// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_CHECKS_HPP
#define RCPU_DETAIL_CHECKS_HPP

// Input validation shared by every public entry point. All checks run before any state changes,
// so a call that throws leaves its arguments and the object untouched.

#include "intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"

namespace rcpu {
namespace detail {

template <typename Scalar>
struct is_supported_scalar : std::integral_constant<bool, std::is_same<Scalar, float>::value ||
                                                              std::is_same<Scalar, double>::value> {};

#define RCPU_STATIC_ASSERT_SCALAR(S) \
  static_assert(::rcpu::detail::is_supported_scalar<S>::value, "rcpu supports float and double scalars only")

inline std::string shape(Index rows, Index cols) {
  std::ostringstream os;
  os << rows << "x" << cols;
  return os.str();
}

template <typename Derived>
std::string shape(const Eigen::EigenBase<Derived>& m) {
  return shape(m.rows(), m.cols());
}

[[noreturn]] inline void fail(const std::string& message) { throw invalid_argument(message); }

inline void require(bool ok, const std::string& message) {
  if (!ok) fail(message);
}

/// The first non-finite entry of `m`, column by column: false (and i, j untouched) if there is none.
template <typename Derived>
bool find_non_finite(const Eigen::DenseBase<Derived>& m, Index& i, Index& j) {
  if (m.allFinite()) return false;
  for (Index c = 0; c < m.cols(); ++c)
    for (Index r = 0; r < m.rows(); ++r)
      if (!std::isfinite(static_cast<double>(m(r, c)))) {
        i = r;
        j = c;
        return true;
      }
  return false;
}

/// Throws unless every entry of `m` is finite; names the argument and the first bad entry.
template <typename Derived>
void require_finite(const Eigen::DenseBase<Derived>& m, const char* name) {
  Index i = 0, j = 0;
  if (!find_non_finite(m, i, j)) return;
  std::ostringstream os;
  os << name << " (" << shape(m.rows(), m.cols()) << ") has a non-finite entry " << m(i, j) << " at (" << i << ", " << j
     << ")";
  fail(os.str());
}

inline void require_ratio(double ratio, const char* name) {
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    std::ostringstream os;
    os << name << " = " << ratio << " is outside [0, 1)";
    fail(os.str());
  }
}

/// Validates a kept set against `n` units: non-empty, in range, no repeats. Order is free.
inline void require_kept_set(const std::vector<Index>& kept, Index n, const char* name) {
  if (kept.empty()) fail(std::string(name) + " is empty: at least one column must be kept (of " + std::to_string(n) + ")");
  std::vector<char> seen(static_cast<std::size_t>(n), 0);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const Index j = kept[i];
    if (j < 0 || j >= n) {
      std::ostringstream os;
      os << name << "[" << i << "] = " << j << " is out of range [0, " << n << ")";
      fail(os.str());
    }
    if (seen[static_cast<std::size_t>(j)]) {
      std::ostringstream os;
      os << name << " repeats index " << j << " (at position " << i << ")";
      fail(os.str());
    }
    seen[static_cast<std::size_t>(j)] = 1;
  }
}

}  // namespace detail
}  // namespace rcpu

#endif  // RCPU_DETAIL_CHECKS_HPP
