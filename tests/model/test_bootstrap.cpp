// rcpu/model/bootstrap.hpp: paired bootstrap intervals. Known answers (identical inputs, constant
// shifts), the normal approximation at large n, stratified = unstratified for one task, the
// perplexity ratio, determinism in the seed, verdicts and bad input. The data are drawn from
// std::mt19937_64 by hand (no std distribution), so they are the same with every standard library.
#include <rcpu/model/bootstrap.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

using rcpu::model::BootstrapOptions;
using rcpu::model::Interval;
using rcpu::model::Verdict;

namespace {

// Uniform in [0, 1) from the top 53 bits.
double uniform(std::mt19937_64& g) { return double(g() >> 11) * (1.0 / 9007199254740992.0); }

std::vector<double> bernoulli(std::mt19937_64& g, std::size_t n, double p) {
  std::vector<double> v(n);
  for (double& x : v) x = uniform(g) < p ? 1.0 : 0.0;
  return v;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

bool same(const Interval& a, const Interval& b) { return a.estimate == b.estimate && a.lo == b.lo && a.hi == b.hi; }

BootstrapOptions fast(std::uint64_t seed = 1) {
  BootstrapOptions o;
  o.resamples = 2000;
  o.seed = seed;
  return o;
}

}  // namespace

TEST_CASE("bootstrap: identical inputs give 0 (ratio 1) and a point interval", "[bootstrap]") {
  std::mt19937_64 g(3);
  const std::vector<double> a = bernoulli(g, 500, 0.4);
  const Interval d = rcpu::model::paired_mean_difference(a, a, fast());
  CHECK(d.estimate == 0.0);
  CHECK(d.lo == 0.0);
  CHECK(d.hi == 0.0);
  std::vector<double> nll(64);
  for (double& x : nll) x = 2.0 + uniform(g);
  const Interval r = rcpu::model::perplexity_ratio(nll, nll, fast());
  CHECK(r.estimate == 1.0);
  CHECK(r.lo == 1.0);
  CHECK(r.hi == 1.0);
  const Interval s = rcpu::model::stratified_mean_difference({{a, a}, {nll, nll}}, fast());
  CHECK(s.estimate == 0.0);
  CHECK(s.lo == 0.0);
  CHECK(s.hi == 0.0);
  CHECK(rcpu::model::verdict(d, true) == Verdict::no_significant_difference);
  CHECK(rcpu::model::verdict(r, false, 1.0) == Verdict::no_significant_difference);
}

TEST_CASE("bootstrap: a constant shift c gives the interval [c, c]", "[bootstrap]") {
  std::mt19937_64 g(4);
  std::vector<double> b(301);
  for (double& x : b) x = std::floor(8 * uniform(g)) / 4;  // multiples of 1/4: a + c is exact
  std::vector<double> a = b;
  for (double& x : a) x += 0.25;
  const Interval d = rcpu::model::paired_mean_difference(a, b, fast());
  CHECK(d.estimate == 0.25);
  CHECK(d.lo == 0.25);
  CHECK(d.hi == 0.25);
  CHECK(rcpu::model::verdict(d, true) == Verdict::holds);
  CHECK(rcpu::model::verdict(d, false) == Verdict::reversed);
  // A shift that is not exact in binary: every resample is the same sum, so lo = hi = estimate.
  std::vector<double> c = b;
  for (double& x : c) x += 0.1;
  const Interval e = rcpu::model::paired_mean_difference(c, b, fast());
  CHECK(e.lo == e.estimate);
  CHECK(e.hi == e.estimate);
  CHECK(std::abs(e.estimate - 0.1) < 1e-15);
  // Stratified: a shift of 0.25 in one task and 0.5 in another: their mean, exactly.
  std::vector<double> a2 = b;
  for (double& x : a2) x += 0.5;
  const Interval s = rcpu::model::stratified_mean_difference({{a, b}, {a2, b}}, fast());
  CHECK(s.estimate == 0.375);
  CHECK(s.lo == 0.375);
  CHECK(s.hi == 0.375);
}

TEST_CASE("bootstrap: at n = 4000 the interval is the normal approximation", "[bootstrap]") {
  // a ~ Bernoulli(0.62), b ~ Bernoulli(0.55), independent: true mean difference 0.07.
  std::mt19937_64 g(20251009);
  const std::size_t n = 4000;
  const std::vector<double> a = bernoulli(g, n, 0.62), b = bernoulli(g, n, 0.55);
  std::vector<double> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  const double m = mean(d);
  double ss = 0;
  for (double x : d) ss += (x - m) * (x - m);
  const double sd = std::sqrt(ss / double(n - 1));
  const double half = 1.96 * sd / std::sqrt(double(n));
  const Interval iv = rcpu::model::paired_mean_difference(a, b);  // defaults: 10000 resamples, 95%
  INFO("estimate " << iv.estimate << ", interval [" << iv.lo << ", " << iv.hi << "], normal half-width " << half);
  CHECK(iv.estimate == m);
  CHECK(iv.lo < m);
  CHECK(iv.hi > m);
  CHECK(std::abs((iv.hi - iv.lo) / 2 - half) < 0.1 * half);
  CHECK(std::abs((m - iv.lo) - half) < 0.1 * half);  // each side too (the mean is nearly normal)
  CHECK(std::abs((iv.hi - m) - half) < 0.1 * half);
  CHECK(iv.lo < 0.07);
  CHECK(iv.hi > 0.07);
  CHECK(rcpu::model::verdict(iv, true) == Verdict::holds);  // 0.07 is ~3.4 standard errors from 0
  // A 90% interval is narrower: 1.645 / 1.96 of the 95% one, within 10%.
  BootstrapOptions o90;
  o90.confidence = 0.90;
  const Interval iv90 = rcpu::model::paired_mean_difference(a, b, o90);
  CHECK(std::abs((iv90.hi - iv90.lo) / 2 - 1.645 / 1.96 * half) < 0.1 * half);
}

TEST_CASE("bootstrap: stratified with one task is the paired bootstrap; several tasks weigh equally", "[bootstrap]") {
  std::mt19937_64 g(8);
  const std::vector<double> a = bernoulli(g, 700, 0.5), b = bernoulli(g, 700, 0.45);
  const BootstrapOptions o = fast(77);
  const Interval p = rcpu::model::paired_mean_difference(a, b, o);
  const Interval s = rcpu::model::stratified_mean_difference({{a, b}}, o);
  CHECK(same(p, s));
  // Two tasks of very different sizes: the estimate is the mean of the two task differences, not the
  // pooled mean over all items.
  const std::vector<double> a2 = bernoulli(g, 100, 0.9), b2 = bernoulli(g, 100, 0.5);
  const Interval t = rcpu::model::stratified_mean_difference({{a, b}, {a2, b2}}, o);
  const double want = ((mean(a) - mean(b)) + (mean(a2) - mean(b2))) / 2;
  CHECK(std::abs(t.estimate - want) < 1e-15);
  CHECK(t.lo < t.estimate);
  CHECK(t.hi > t.estimate);
  // The small task carries half the weight: its sampling noise widens the interval beyond the big
  // task's alone (scaled to the same weight).
  CHECK(t.hi - t.lo > (p.hi - p.lo) / 2);
}

TEST_CASE("bootstrap: perplexity ratio", "[bootstrap]") {
  std::mt19937_64 g(9);
  const std::size_t n = 48;
  std::vector<double> a(n), b(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double base = 2.5 + uniform(g);  // windows differ much more than the models do
    b[i] = base;
    a[i] = base + 0.02 + 0.03 * (uniform(g) - 0.5);
  }
  const Interval r = rcpu::model::perplexity_ratio(a, b, fast());
  std::vector<double> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  CHECK(r.estimate == std::exp(mean(d)));
  CHECK(r.lo < r.estimate);
  CHECK(r.hi > r.estimate);
  CHECK(r.lo > 1.0);  // A is worse on every window: its PPL is higher
  CHECK(rcpu::model::verdict(r, false, 1.0) == Verdict::reversed);
  // Swapping A and B inverts the ratio and its interval.
  const Interval q = rcpu::model::perplexity_ratio(b, a, fast());
  CHECK(std::abs(q.estimate * r.estimate - 1.0) < 1e-12);
  CHECK(std::abs(q.lo * r.hi - 1.0) < 1e-12);
  CHECK(std::abs(q.hi * r.lo - 1.0) < 1e-12);
  CHECK(rcpu::model::verdict(q, false, 1.0) == Verdict::holds);
  // Paired: the unpaired spread of the windows (about 0.3 nats) would swamp the 0.02 difference.
  CHECK(std::log(r.hi) - std::log(r.lo) < 0.02);
}

TEST_CASE("bootstrap: the same seed gives the same interval, another seed a slightly different one", "[bootstrap]") {
  std::mt19937_64 g(10);
  const std::vector<double> a = bernoulli(g, 400, 0.6), b = bernoulli(g, 400, 0.5);
  const Interval x = rcpu::model::paired_mean_difference(a, b, fast(5));
  const Interval y = rcpu::model::paired_mean_difference(a, b, fast(5));
  const Interval z = rcpu::model::paired_mean_difference(a, b, fast(6));
  CHECK(same(x, y));
  CHECK(z.estimate == x.estimate);
  CHECK((z.lo != x.lo || z.hi != x.hi));
  CHECK(std::abs(z.lo - x.lo) < 0.01);
  CHECK(std::abs(z.hi - x.hi) < 0.01);
}

TEST_CASE("bootstrap: a fixed seed gives fixed numbers (portable generator and bounded draw)", "[bootstrap]") {
  // mt19937_64's output is fixed by the C++ standard (its 10000th value from the default seed is
  // 9981545732273789042), and the bounded draw is rejection, not a library distribution.
  std::mt19937_64 g0;
  g0.discard(9999);
  CHECK(g0() == 9981545732273789042ull);
  std::mt19937_64 g(1);
  std::vector<std::uint64_t> draws;
  for (int i = 0; i < 1000; ++i) draws.push_back(rcpu::model::detail::bounded_draw(g, 7));
  std::vector<int> count(7, 0);
  for (std::uint64_t d : draws) {
    REQUIRE(d < 7);
    ++count[std::size_t(d)];
  }
  for (int c : count) CHECK((c > 100 && c < 190));  // 1000/7 = 143 each
  CHECK(rcpu::model::detail::bounded_draw(g, 1) == 0);
}

TEST_CASE("bootstrap: verdicts", "[bootstrap]") {
  using rcpu::model::verdict;
  CHECK(verdict({0.02, 0.01, 0.03}, true) == Verdict::holds);
  CHECK(verdict({0.02, 0.01, 0.03}, false) == Verdict::reversed);
  CHECK(verdict({0.01, -0.01, 0.03}, true) == Verdict::no_significant_difference);
  CHECK(verdict({0.01, -0.01, 0.03}, false) == Verdict::no_significant_difference);
  CHECK(verdict({-0.02, -0.03, -0.01}, true) == Verdict::reversed);
  CHECK(verdict({-0.02, -0.03, -0.01}, false) == Verdict::holds);
  CHECK(verdict({0.01, 0.0, 0.02}, true) == Verdict::no_significant_difference);  // touching 0
  // Ratios around 1: a perplexity ratio PPL_A / PPL_B below 1 means A is better.
  CHECK(verdict({0.95, 0.93, 0.97}, false, 1.0) == Verdict::holds);
  CHECK(verdict({1.05, 1.01, 1.09}, false, 1.0) == Verdict::reversed);
  CHECK(verdict({1.0, 0.98, 1.02}, false, 1.0) == Verdict::no_significant_difference);
  CHECK(verdict({0.95, 0.93, 0.97}, true, 1.0) == Verdict::reversed);
  CHECK(std::string(rcpu::model::to_string(Verdict::holds)) == "holds");
  CHECK(std::string(rcpu::model::to_string(Verdict::no_significant_difference)) == "no_significant_difference");
  CHECK(std::string(rcpu::model::to_string(Verdict::reversed)) == "reversed");
  CHECK_THROWS_AS(verdict(Interval{}, true), rcpu::invalid_argument);
  CHECK_THROWS_AS(verdict({0.0, 0.1, -0.1}, true), rcpu::invalid_argument);
}

TEST_CASE("bootstrap: bad input is refused with the argument and its size", "[bootstrap]") {
  const std::vector<double> a(10, 1.0), b(9, 1.0), empty;
  const auto says = [](auto&& f, const std::string& what) {
    try {
      f();
    } catch (const rcpu::invalid_argument& e) {
      INFO(e.what());
      return std::string(e.what()).find(what) != std::string::npos;
    }
    return false;
  };
  using namespace rcpu::model;
  CHECK(says([&] { paired_mean_difference(a, b); }, "a and b must be non-empty and of equal length, got 10 and 9"));
  CHECK(says([&] { paired_mean_difference(empty, empty); }, "got 0 and 0"));
  CHECK(says([&] { perplexity_ratio(a, b); }, "nll_a and nll_b"));
  std::vector<double> nan = a;
  nan[3] = std::nan("");
  CHECK(says([&] { paired_mean_difference(a, nan); }, "b[3] = nan is not finite (b has 10 values)"));
  std::vector<double> inf = a;
  inf[0] = INFINITY;
  CHECK(says([&] { perplexity_ratio(inf, a); }, "nll_a[0]"));
  BootstrapOptions o;
  o.resamples = 99;
  CHECK(says([&] { paired_mean_difference(a, a, o); }, "options.resamples = 99 must be >= 100"));
  o = BootstrapOptions();
  for (double c : {0.0, 1.0, -0.5, 1.5, double(NAN)}) {
    o.confidence = c;
    CHECK(says([&] { paired_mean_difference(a, a, o); }, "options.confidence"));
  }
  CHECK(says([&] { stratified_mean_difference({}); }, "tasks is empty"));
  CHECK(says([&] { stratified_mean_difference({{a, a}, {a, b}}); }, "tasks[1].first and tasks[1].second"));
  CHECK(says([&] { stratified_mean_difference({{a, a}, {empty, empty}}); }, "got 0 and 0"));
}
