// SPDX-License-Identifier: MIT
#ifndef RCPU_ERROR_HPP
#define RCPU_ERROR_HPP

/// \file error.hpp
/// rcpu's three error tiers: `static_assert` for types, `rcpu::invalid_argument` for bad input
/// (always on, thrown before anything is modified), and `rcpu::Info` for numerical trouble, which is
/// reported in results rather than thrown, so that a long pruning run can decide what to do.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <stdexcept>
#include <string>

namespace rcpu {

/// Thrown for bad input: wrong shapes, NaN/Inf, ratios out of range, invalid kept sets, empty
/// statistics. The message names the argument and the shapes involved.
class invalid_argument : public std::invalid_argument {
 public:
  explicit invalid_argument(const std::string& what) : std::invalid_argument("rcpu: " + what) {}
  /// what() without its "rcpu: " prefix, for a caller that adds context and rethrows.
  std::string message() const { return std::string(what()).substr(6); }
};

/// Thrown only by convenience functions that cannot return a status (e.g. procrustes_rotation)
/// when a numerical routine failed; the class-based APIs report the same failure through Info.
class numerical_error : public std::runtime_error {
 public:
  explicit numerical_error(const std::string& what) : std::runtime_error("rcpu: " + what) {}
};

/// Outcome of a numerical computation, in the spirit of Eigen's `ComputationInfo`.
enum class Info {
  success,             ///< computed as asked
  not_computed,        ///< compute() has not been called
  numerical_issue,     ///< finished with a fallback (e.g. LLT failed and LDLT was used); result usable but check it
  no_convergence       ///< an iterative routine did not converge; result not usable
};

/// Human-readable name of an Info value.
inline const char* to_string(Info info) {
  switch (info) {
    case Info::success: return "success";
    case Info::not_computed: return "not_computed";
    case Info::numerical_issue: return "numerical_issue";
    case Info::no_convergence: return "no_convergence";
  }
  return "unknown";
}

}  // namespace rcpu

#endif  // RCPU_ERROR_HPP
