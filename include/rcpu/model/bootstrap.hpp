// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_BOOTSTRAP_HPP
#define RCPU_MODEL_BOOTSTRAP_HPP

/// \file bootstrap.hpp
/// Paired bootstrap confidence intervals for verdicts of the form "model A beats model B" on the same
/// evaluation items (docs/maths.md, "Paired bootstrap"):
///
///   paired_mean_difference()      mean(a - b) over items (documents: 0/1 correctness, or scores)
///   stratified_mean_difference()  the difference of the mean over tasks of per-task means
///   perplexity_ratio()            PPL_A / PPL_B = exp(mean(nll_a - nll_b)) over windows
///
/// The items are resampled with replacement, the same draw for A and B (paired: the item-to-item
/// variation that A and B share cancels), and the interval is the percentile interval of the
/// resampled statistic. Deterministic given the seed and portable across compilers and standard
/// libraries: std::mt19937_64 (whose output the C++ standard fixes) with an unbiased bounded draw by
/// rejection, never std::uniform_int_distribution (whose output differs between libraries).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../detail/checks.hpp"
#include "../error.hpp"

namespace rcpu {
namespace model {

/// A point estimate and its confidence interval [lo, hi].
struct Interval {
  double estimate = std::numeric_limits<double>::quiet_NaN();
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
};

/// What an interval says about a claim "A beats B".
enum class Verdict {
  holds,                      ///< the whole interval lies on the claimed side of the null value
  no_significant_difference,  ///< the interval contains the null value (or touches it)
  reversed                    ///< the whole interval lies on the other side: B beats A
};

inline const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::holds: return "holds";
    case Verdict::no_significant_difference: return "no_significant_difference";
    case Verdict::reversed: return "reversed";
  }
  return "unknown";
}

/// The verdict on the claim "A beats B" from an interval of a statistic of A against B.
/// \param iv                          an interval of A - B (null value 0) or A / B (null value 1)
/// \param higher_is_better_for_claim  true when the claim means the statistic is above the null value
///                                    (accuracy difference A - B > 0); false when below (perplexity
///                                    ratio PPL_A / PPL_B < 1)
/// \param null_value                  the value of "no difference": 0 for differences, 1 for ratios
/// \return holds when lo > null (hi < null for lower-is-better), reversed when the whole interval is
///         strictly on the other side, else no_significant_difference. An interval that only touches
///         the null value (e.g. [0, 0] from identical results) is no_significant_difference.
/// \throws rcpu::invalid_argument if lo, hi or null_value is not finite or lo > hi.
inline Verdict verdict(const Interval& iv, bool higher_is_better_for_claim, double null_value = 0.0) {
  rcpu::detail::require(std::isfinite(iv.lo) && std::isfinite(iv.hi) && std::isfinite(null_value) && iv.lo <= iv.hi,
                        "verdict: interval [" + std::to_string(iv.lo) + ", " + std::to_string(iv.hi) +
                            "] and null_value " + std::to_string(null_value) +
                            " must be finite with lo <= hi");
  const bool above = iv.lo > null_value, below = iv.hi < null_value;
  if (above) return higher_is_better_for_claim ? Verdict::holds : Verdict::reversed;
  if (below) return higher_is_better_for_claim ? Verdict::reversed : Verdict::holds;
  return Verdict::no_significant_difference;
}

/// Settings of the bootstrap.
struct BootstrapOptions {
  int resamples = 10000;           ///< bootstrap resamples, >= 100
  double confidence = 0.95;        ///< in (0, 1): the interval holds the central `confidence` of the resamples
  std::uint64_t seed = 20251009;   ///< the same seed gives the same interval on every platform
};

namespace detail {

// Uniform in [0, n) (n >= 1) from mt19937_64, unbiased: rejection of the lowest 2^64 mod n values
// (every residue then appears equally often among the accepted draws).
inline std::uint64_t bounded_draw(std::mt19937_64& g, std::uint64_t n) {
  const std::uint64_t threshold = (std::uint64_t(0) - n) % n;  // 2^64 mod n
  for (;;) {
    const std::uint64_t x = g();
    if (x >= threshold) return x % n;
  }
}

// The percentile of sorted values at q in [0, 1]: linear interpolation between order statistics at
// position q (R - 1) (the default of R's quantile() and numpy.percentile). Equal neighbours give
// their value exactly.
inline double percentile_sorted(const std::vector<double>& s, double q) {
  const double pos = q * double(s.size() - 1);
  const std::size_t k = std::min(static_cast<std::size_t>(std::floor(pos)), s.size() - 1);
  if (k + 1 >= s.size()) return s[k];
  const double frac = pos - double(k);
  return frac == 0.0 ? s[k] : s[k] + frac * (s[k + 1] - s[k]);
}

inline void check_options(const BootstrapOptions& opt, const std::string& who) {
  rcpu::detail::require(opt.resamples >= 100, who + ": options.resamples = " + std::to_string(opt.resamples) +
                                                  " must be >= 100");
  rcpu::detail::require(opt.confidence > 0.0 && opt.confidence < 1.0,
                        who + ": options.confidence = " + std::to_string(opt.confidence) + " must be in (0, 1)");
}

inline void check_values(const std::vector<double>& v, const std::string& name, const std::string& who) {
  for (std::size_t i = 0; i < v.size(); ++i)
    rcpu::detail::require(std::isfinite(v[i]), who + ": " + name + "[" + std::to_string(i) + "] = " +
                                                   std::to_string(v[i]) + " is not finite (" + name + " has " +
                                                   std::to_string(v.size()) + " values)");
}

// Per-item differences a - b of one task, after the checks.
inline std::vector<double> paired_differences(const std::vector<double>& a, const std::vector<double>& b,
                                              const std::string& name_a, const std::string& name_b,
                                              const std::string& who) {
  rcpu::detail::require(!a.empty() && a.size() == b.size(),
                        who + ": " + name_a + " and " + name_b + " must be non-empty and of equal length, got " +
                            std::to_string(a.size()) + " and " + std::to_string(b.size()) + " values");
  check_values(a, name_a, who);
  check_values(b, name_b, who);
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

inline double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / double(v.size());
}

// The estimate and percentile interval of the mean over tasks of the per-task mean difference, each
// task's items resampled independently (tasks in order, items in order, from one generator). One
// task is the plain paired bootstrap.
inline Interval stratified_bootstrap(const std::vector<std::vector<double>>& tasks, const BootstrapOptions& opt) {
  const double T = double(tasks.size());
  double est = 0.0;
  for (const auto& d : tasks) est += mean(d);
  Interval iv;
  iv.estimate = est / T;
  std::mt19937_64 g(opt.seed);
  std::vector<double> stat(static_cast<std::size_t>(opt.resamples));
  for (double& s : stat) {
    double total = 0.0;
    for (const auto& d : tasks) {
      const std::uint64_t n = d.size();
      double sum = 0.0;
      for (std::uint64_t i = 0; i < n; ++i) sum += d[static_cast<std::size_t>(bounded_draw(g, n))];
      total += sum / double(n);
    }
    s = total / T;
  }
  std::sort(stat.begin(), stat.end());
  const double tail = (1.0 - opt.confidence) / 2.0;
  iv.lo = percentile_sorted(stat, tail);
  iv.hi = percentile_sorted(stat, 1.0 - tail);
  return iv;
}

}  // namespace detail

/// Paired bootstrap of a mean difference: items i = 1..n (documents, say) scored under A and B.
///
///   estimate = mean_i (a_i - b_i)
///
/// Each resample draws n items with replacement (the same items for A and B) and takes the mean
/// difference over them; the interval is the (1 - confidence)/2 and (1 + confidence)/2 percentiles
/// of the resampled means (linear interpolation between order statistics).
/// \param a, b  per-item values of the same items under A and B (e.g. 0/1 correctness)
/// \return the estimate and its percentile interval
/// \throws rcpu::invalid_argument on empty or unequal inputs, a non-finite value (NaN, Inf),
///         resamples < 100 or confidence outside (0, 1); the message names the argument and sizes.
inline Interval paired_mean_difference(const std::vector<double>& a, const std::vector<double>& b,
                                       const BootstrapOptions& opt = {}) {
  const std::string who = "paired_mean_difference";
  detail::check_options(opt, who);
  return detail::stratified_bootstrap({detail::paired_differences(a, b, "a", "b", who)}, opt);
}

/// Stratified paired bootstrap of the difference of a mean over tasks (the "mean of 7 tasks" column):
///
///   estimate = (1/T) sum_t [ mean_i a_ti - mean_i b_ti ]
///
/// Each task's items are resampled independently, n_t items with replacement (the same for A and B),
/// so every task keeps its weight 1/T. With one task it is paired_mean_difference() with the same
/// seed, bit for bit.
/// \param tasks  per task: (values under A, values under B) of that task's items
/// \throws rcpu::invalid_argument on no task, a task with empty or unequal inputs, a non-finite
///         value, or bad options; the message names the task and the sizes.
inline Interval stratified_mean_difference(const std::vector<std::pair<std::vector<double>, std::vector<double>>>& tasks,
                                           const BootstrapOptions& opt = {}) {
  const std::string who = "stratified_mean_difference";
  detail::check_options(opt, who);
  rcpu::detail::require(!tasks.empty(), who + ": tasks is empty");
  std::vector<std::vector<double>> d;
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const std::string k = std::to_string(t);
    d.push_back(detail::paired_differences(tasks[t].first, tasks[t].second, "tasks[" + k + "].first",
                                           "tasks[" + k + "].second", who));
  }
  return detail::stratified_bootstrap(d, opt);
}

/// Paired bootstrap of a perplexity ratio over evaluation windows that hold the same number of
/// tokens each (then the mean NLL over all tokens is the mean of the window means):
///
///   estimate = exp(mean_w (nll_a_w - nll_b_w)) = PPL_A / PPL_B
///
/// Windows are resampled with replacement (the same windows for A and B); the interval is exp of the
/// percentile interval of the resampled mean log-ratio (exp is increasing, so it is the percentile
/// interval of the ratio up to the interpolation between order statistics). Below 1: A is better.
/// \param nll_a, nll_b  per-window mean token NLL (nats) of the same windows under A and B
/// \throws rcpu::invalid_argument as paired_mean_difference().
inline Interval perplexity_ratio(const std::vector<double>& nll_a, const std::vector<double>& nll_b,
                                 const BootstrapOptions& opt = {}) {
  const std::string who = "perplexity_ratio";
  detail::check_options(opt, who);
  const Interval log_ratio =
      detail::stratified_bootstrap({detail::paired_differences(nll_a, nll_b, "nll_a", "nll_b", who)}, opt);
  return Interval{std::exp(log_ratio.estimate), std::exp(log_ratio.lo), std::exp(log_ratio.hi)};
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_BOOTSTRAP_HPP
