// Oracles for rcpu::Statistics: streaming equals one pass, shards merge exactly, the variance
// survives |mean| >> std, and bad input leaves the accumulator untouched.
#include <rcpu/statistics.hpp>

#include <algorithm>
#include <random>
#include <type_traits>

#include "support.hpp"

// Every member of every public instantiation compiles.
template class rcpu::Statistics<float>;
template class rcpu::Statistics<double>;
template class rcpu::Statistics<float, float>;
template class rcpu::Statistics<double, float>;

using rcpu_test::Mat;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

// Direct statistics of a whole matrix in long double: the oracle.
struct Direct {
  Eigen::VectorXd sum, abs_sum, sq_sum, mean, var;
  Eigen::MatrixXd gram;
};

template <typename Derived>
Direct direct(const Eigen::MatrixBase<Derived>& Xin) {
  using LD = long double;
  const Eigen::Matrix<LD, Eigen::Dynamic, Eigen::Dynamic> X = Xin.template cast<LD>();
  Direct d;
  const auto n = LD(X.rows());
  const Eigen::Matrix<LD, Eigen::Dynamic, 1> s = X.colwise().sum().transpose();
  const Eigen::Matrix<LD, Eigen::Dynamic, 1> m = s / n;
  d.sum = s.template cast<double>();
  d.mean = m.template cast<double>();
  d.abs_sum = X.cwiseAbs().colwise().sum().transpose().template cast<double>();
  d.sq_sum = X.cwiseAbs2().colwise().sum().transpose().template cast<double>();
  d.var = ((X.rowwise() - m.transpose()).cwiseAbs2().colwise().sum().transpose() / n).template cast<double>();
  d.gram = (X.transpose() * X).template cast<double>();
  return d;
}

template <typename S, typename A>
void require_matches(const rcpu::Statistics<S, A>& st, const Direct& d, double t) {
  CHECK(rel_diff(st.sum(), d.sum) <= t);
  CHECK(rel_diff(st.abs_sum(), d.abs_sum) <= t);
  CHECK(rel_diff(st.sq_sum(), d.sq_sum) <= t);
  CHECK(rel_diff(st.mean(), d.mean) <= t);
  CHECK(rel_diff(st.variance(), d.var) <= t);
  CHECK(rel_diff(st.gram(), d.gram) <= t);
}

}  // namespace

TEMPLATE_TEST_CASE("streaming in blocks equals one pass over the whole matrix", "[statistics]", float, double) {
  Rng rng(1);
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  Mat X = rng.normal<TestType>(1000, 17);
  X.col(3).array() += TestType(5);  // a channel with a large mean
  const Direct d = direct(X);

  rcpu::Statistics<TestType> whole(17), blocks(17);
  whole.update(X);
  for (Eigen::Index r = 0; r < X.rows(); r += 96) blocks.update(X.middleRows(r, std::min<Eigen::Index>(96, X.rows() - r)));
  REQUIRE(whole.tokens() == 1000);
  REQUIRE(blocks.tokens() == 1000);
  // Sums are kept in double whatever the input scalar, so both match the oracle to double rounding.
  require_matches(whole, d, 1e-13);
  require_matches(blocks, d, 1e-13);
  CHECK(rel_diff(blocks.l2_norm(), d.sq_sum.cwiseSqrt()) <= 1e-13);
  CHECK(rel_diff(blocks.mean_abs(), d.abs_sum / 1000.0) <= 1e-13);
}

TEST_CASE("one million tokens: blocks match one pass within 1e-12 relative", "[statistics]") {
  Rng rng(2);
  const Eigen::Index n = 1000000, d = 6;
  Eigen::MatrixXd X = rng.normal(n, d);
  X.col(0).array() += 3.0;
  X.col(1) *= 100.0;
  rcpu::Statistics<double> one(d), streamed(d);
  one.update(X);  // one call over the whole matrix
  for (Eigen::Index r = 0; r < n; r += 8192) streamed.update(X.middleRows(r, std::min<Eigen::Index>(8192, n - r)));
  const Direct ref = direct(X);
  REQUIRE(streamed.tokens() == n);
  for (const auto* st : {&one, &streamed}) require_matches(*st, ref, 1e-12);
  CHECK(rel_diff(one.gram(), streamed.gram()) <= 1e-12);
  CHECK(rel_diff(one.variance(), streamed.variance()) <= 1e-12);
}

TEST_CASE("variance stays accurate when |mean| >> std", "[statistics]") {
  Rng rng(3);
  Eigen::MatrixXd X = rng.normal(4000, 3);
  X.col(0).array() += 1e8;  // s2/n - mean^2 would lose every digit here
  X.col(1).array() += -3e7;
  rcpu::Statistics<double> st(3, rcpu::GramMode::diagonal);
  for (Eigen::Index r = 0; r < X.rows(); r += 100) st.update(X.middleRows(r, 100));
  const Direct d = direct(X);
  CHECK(rel_diff(st.variance(), d.var) <= 1e-8);
  CHECK((st.variance().array() > 0.5).all());
}

TEMPLATE_TEST_CASE("merging shards equals one pass", "[statistics]", float, double) {
  Rng rng(4);
  const auto X = rng.normal<TestType>(900, 11);
  rcpu::Statistics<TestType> all(11), a(11), b(11), c(11), empty(11);
  all.update(X);
  a.update(X.topRows(100));
  b.update(X.middleRows(100, 500));
  c.update(X.bottomRows(300));
  a.merge(empty).merge(b).merge(c);
  REQUIRE(a.tokens() == 900);
  CHECK(rel_diff(a.sum(), all.sum()) <= 1e-13);
  CHECK(rel_diff(a.abs_sum(), all.abs_sum()) <= 1e-13);
  CHECK(rel_diff(a.sq_sum(), all.sq_sum()) <= 1e-13);
  CHECK(rel_diff(a.variance(), all.variance()) <= 1e-13);
  CHECK(rel_diff(a.gram(), all.gram()) <= 1e-13);
  // Merging into an empty accumulator copies.
  rcpu::Statistics<TestType> e(11);
  e.merge(all);
  CHECK(rel_diff(e.gram(), all.gram()) == 0.0);
}

TEMPLATE_TEST_CASE("row-major, column-major, Map and expressions give the same statistics", "[statistics]", float,
                   double) {
  Rng rng(5);
  using ColMat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  using RowMat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const ColMat X = rng.normal<TestType>(300, 9);
  const RowMat Xr = X;
  std::vector<TestType> buffer(Xr.data(), Xr.data() + Xr.size());  // a caller's row-major token buffer
  const Eigen::Map<const RowMat> map(buffer.data(), 300, 9);
  rcpu::Statistics<TestType> s_col(9), s_row(9), s_map(9), s_expr(9);
  s_col.update(X);
  s_row.update(Xr);
  s_map.update(map);
  s_expr.update(TestType(0.5) * (X + X));
  for (const auto* s : {&s_row, &s_map, &s_expr}) {
    CHECK(rel_diff(s->gram(), s_col.gram()) <= 1e-14);
    CHECK(rel_diff(s->variance(), s_col.variance()) <= 1e-14);
    CHECK(rel_diff(s->abs_sum(), s_col.abs_sum()) <= 1e-14);
  }
}

TEMPLATE_TEST_CASE("diagonal mode keeps every per-channel statistic and no Gram", "[statistics]", float, double) {
  Rng rng(6);
  const auto X = rng.normal<TestType>(200, 5);
  rcpu::Statistics<TestType> full(5), diag(5, rcpu::GramMode::diagonal);
  full.update(X);
  diag.update(X);
  CHECK_FALSE(diag.has_gram());
  CHECK(rel_diff(diag.variance(), full.variance()) == 0.0);
  CHECK(rel_diff(diag.sq_sum(), full.gram().diagonal()) <= 1e-15);
  CHECK_THROWS_AS(diag.gram(), rcpu::invalid_argument);
  CHECK_THROWS_AS(diag.covariance(), rcpu::invalid_argument);
  CHECK_THROWS_AS(full.merge(diag), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("covariance equals the two-pass covariance", "[statistics]", float, double) {
  Rng rng(7);
  auto X = rng.normal<TestType>(500, 7);
  X.col(2).array() += TestType(10);
  rcpu::Statistics<TestType> st(7);
  st.update(X);
  const Eigen::MatrixXd Xd = X.template cast<double>();
  const Eigen::MatrixXd C = Xd.rowwise() - Xd.colwise().mean();
  const Eigen::MatrixXd cov = C.transpose() * C / 500.0;
  CHECK(rel_diff(st.covariance(), cov) <= 1e-12);
}

TEMPLATE_TEST_CASE("float accumulation is available when asked for", "[statistics]", float, double) {
  Rng rng(8);
  const auto X = rng.normal<TestType>(256, 4);
  rcpu::Statistics<TestType, float> st(4);
  st.update(X);
  const Direct d = direct(X);
  CHECK(rel_diff(st.gram(), d.gram) <= 1e-5);
  CHECK(rel_diff(st.variance(), d.var) <= 1e-5);
}

TEST_CASE("from_sums rebuilds an accumulator exactly and validates its input", "[statistics]") {
  Rng rng(9);
  const Eigen::MatrixXd X = rng.normal(64, 4);
  rcpu::Statistics<double> st(4);
  st.update(X);
  const auto back = rcpu::Statistics<double>::from_sums(st.tokens(), st.sum(), st.abs_sum(), st.sq_sum(), st.m2(), st.gram());
  CHECK(back.tokens() == 64);
  CHECK(rel_diff(back.gram(), st.gram()) == 0.0);
  CHECK(rel_diff(back.variance(), st.variance()) == 0.0);
  const Eigen::VectorXd neg = -Eigen::VectorXd::Ones(4);
  CHECK_THROWS_AS(rcpu::Statistics<double>::from_sums(64, st.sum(), neg, st.sq_sum(), st.m2(), st.gram()),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::Statistics<double>::from_sums(64, st.sum(), st.abs_sum(), st.sq_sum(), st.m2(),
                                                      Eigen::MatrixXd::Zero(3, 3)),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::Statistics<double>::from_sums(-1, st.sum(), st.abs_sum(), st.sq_sum(), st.m2(), st.gram()),
                  rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("bad input throws and leaves the statistics unchanged", "[statistics][errors]", float, double) {
  Rng rng(10);
  auto X = rng.normal<TestType>(50, 6);
  rcpu::Statistics<TestType> st(6);
  CHECK_THROWS_AS(st.mean(), rcpu::invalid_argument);  // no tokens yet
  CHECK_THROWS_AS(st.variance(), rcpu::invalid_argument);
  CHECK_THROWS_AS(st.gram(), rcpu::invalid_argument);
  st.update(X);
  const Eigen::MatrixXd gram_before = st.gram();
  const Eigen::VectorXd var_before = st.variance();

  const auto wrong = rng.normal<TestType>(10, 5);
  try {
    st.update(wrong);
    FAIL("expected rcpu::invalid_argument");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("10x5") != std::string::npos);  // names the shape
  }
  X(7, 2) = std::numeric_limits<TestType>::quiet_NaN();
  CHECK_THROWS_AS(st.update(X), rcpu::invalid_argument);
  X(7, 2) = std::numeric_limits<TestType>::infinity();
  CHECK_THROWS_AS(st.update(X), rcpu::invalid_argument);
  CHECK(st.tokens() == 50);
  CHECK(rel_diff(st.gram(), gram_before) == 0.0);
  CHECK(rel_diff(st.variance(), var_before) == 0.0);
  CHECK_THROWS_AS(st.merge(rcpu::Statistics<TestType>(7)), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::Statistics<TestType>(-1), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("every block size and layout matches the one-pass oracle (vector lanes and their remainders)",
                   "[statistics]", float, double) {
  Rng rng(21);
  using RowMat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  // Block sizes around the kernels' 4-token lanes, and channel counts around their vector widths.
  for (Eigen::Index d : {1, 3, 8, 13}) {
    Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> X = rng.normal<TestType>(1 + 2 + 3 + 4 + 5 + 7 + 9, d);
    X.col(0).array() += TestType(3);
    const Direct oracle = direct(X);
    const RowMat Xr = X;
    rcpu::Statistics<TestType> col(d), row(d);
    Eigen::Index r0 = 0;
    for (Eigen::Index len : {1, 2, 3, 4, 5, 7, 9}) {
      col.update(X.middleRows(r0, len));
      row.update(Xr.middleRows(r0, len));
      r0 += len;
    }
    require_matches(col, oracle, 1e-13);
    require_matches(row, oracle, 1e-13);
  }
}

TEMPLATE_TEST_CASE("an expression spanning several chunks equals the same block read in place", "[statistics]",
                   float, double) {
  Rng rng(22);
  using Stats = rcpu::Statistics<TestType>;
  const Eigen::Index n = 2 * Stats::chunk_rows + 123;
  const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> X = rng.normal<TestType>(n, 5);
  Stats in_place(5), expr(5);
  in_place.update(X);
  expr.update(TestType(2) * X - X);  // not directly accessible: evaluated chunk by chunk, twice
  CHECK(expr.tokens() == n);
  CHECK(rel_diff(expr.gram(), in_place.gram()) <= 1e-14);
  CHECK(rel_diff(expr.variance(), in_place.variance()) <= 1e-14);
  CHECK(rel_diff(expr.abs_sum(), in_place.abs_sum()) <= 1e-14);
  CHECK(rel_diff(expr.sum(), in_place.sum()) <= 1e-14);
}

TEMPLATE_TEST_CASE("a bad entry anywhere in a large block, in any layout, is found and changes nothing",
                   "[statistics][errors]", float, double) {
  Rng rng(23);
  using Stats = rcpu::Statistics<TestType>;
  using RowMat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Index n = Stats::chunk_rows + 10;  // the bad entry sits in the second chunk
  const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> X0 = rng.normal<TestType>(n, 4);
  Stats st(4);
  st.update(X0.topRows(20));
  const Eigen::MatrixXd gram_before = st.gram();
  const Eigen::VectorXd sum_before = st.sum(), m2_before = st.m2();
  const TestType bad[] = {std::numeric_limits<TestType>::quiet_NaN(), std::numeric_limits<TestType>::infinity(),
                          -std::numeric_limits<TestType>::infinity()};
  for (TestType v : bad)
    for (Eigen::Index row : {Eigen::Index(0), n - 3}) {
      auto X = X0;
      X(row, 1) = v;
      const RowMat Xr = X;
      const std::string where = "(" + std::to_string(row) + ", 1)";
      for (int layout = 0; layout < 3; ++layout) {
        try {
          if (layout == 0) st.update(X);
          if (layout == 1) st.update(Xr);
          if (layout == 2) st.update(TestType(1) * X);
          FAIL("expected rcpu::invalid_argument");
        } catch (const rcpu::invalid_argument& e) {
          CHECK(std::string(e.what()).find(where) != std::string::npos);  // names the entry
        }
      }
    }
  // The first statistics of an empty accumulator take their shift from the first token: a bad
  // first token must be caught as well.
  Stats fresh(4);
  auto X = X0;
  X(0, 2) = std::numeric_limits<TestType>::infinity();
  CHECK_THROWS_AS(fresh.update(X), rcpu::invalid_argument);
  CHECK(fresh.tokens() == 0);
  CHECK(st.tokens() == 20);
  CHECK(rel_diff(st.gram(), gram_before) == 0.0);
  CHECK(rel_diff(st.sum(), sum_before) == 0.0);
  CHECK(rel_diff(st.m2(), m2_before) == 0.0);
}

TEST_CASE("sums that overflow double are refused, not accumulated as Inf", "[statistics][errors]") {
  Eigen::MatrixXd X = Eigen::MatrixXd::Ones(8, 3);
  rcpu::Statistics<double> st(3);
  st.update(X);
  X(5, 1) = 1e200;  // finite, but its square is not
  try {
    st.update(X);
    FAIL("expected rcpu::invalid_argument");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("overflow") != std::string::npos);
    CHECK(std::string(e.what()).find("8x3") != std::string::npos);
  }
  CHECK(st.tokens() == 8);
  CHECK(st.gram().allFinite());
  CHECK(st.sq_sum().allFinite());
}

namespace {

// Channel j of token t is offset_j + k_tj with small integers k (every value exact in float and
// double): the exact m2 is (n sum k^2 - (sum k)^2) / n, computed in integers.
struct ExactData {
  Eigen::MatrixXd X;        // tokens x channels
  Eigen::VectorXd m2;       // exact m2 (one rounding, in long double, of an exact rational)
};

ExactData exact_data(Eigen::Index n, double offset, double first_token_sds, std::uint32_t seed) {
  const Eigen::Index d = 3;
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> k(-2, 2);  // std ~ 1.41
  ExactData e;
  e.X.resize(n, d);
  e.m2.resize(d);
  for (Eigen::Index j = 0; j < d; ++j) {
    const double oj = offset * double(j + 1);
    long long s1 = 0, s2 = 0;
    for (Eigen::Index t = 0; t < n; ++t) {
      const long long kt = t == 0 ? (long long)(first_token_sds * 1.41) * (j == 1 ? -1 : 1) : k(gen);
      e.X(t, j) = oj + double(kt);
      s1 += kt;
      s2 += kt * kt;
    }
    e.m2(j) = double((static_cast<long double>(n) * s2 - static_cast<long double>(s1) * s1) / n);
  }
  return e;
}

}  // namespace

TEMPLATE_TEST_CASE("m2 is exact to ~1e-14 at |mean|/std = 1e6, whatever the first token", "[statistics]", float,
                   double) {
  // The first block used to be shifted by its first token with sum (x - c) taken as sum x - n c: a
  // relative error of eps (|mean|/std)(|x_0 - mean|/std), 2e-8 here; and the rounding of the running
  // mean, eps |mean| per block, limited later blocks to ~1e-11. Now sum (x - c) is summed as such, a
  // shift more than 4 std from the block's mean is replaced by the mean, and the running mean is
  // carried to twice double's precision. Measured: at most 1.6e-14 (the 1000 rounded squares of a
  // first block with a 100-std outlier), 4e-16 in blocks of 96.
  for (const double offset : {1e4, 1e6}) {
    if (std::is_same<TestType, float>::value && offset * 3 + 2e4 > 16777216.0) continue;  // beyond float's integers
    for (const double first : {0.0, 3.0, 100.0, 1e4}) {
      const ExactData e = exact_data(1000, offset, first, 71);
      const Mat<TestType> Xs = e.X.cast<TestType>();
      REQUIRE(Xs.template cast<double>() == e.X);  // the data are exact in TestType
      INFO("offset " << offset << ", first token " << first << " std from the mean");
      rcpu::Statistics<TestType> one(3), blocks(3), rows(3), expr(3);
      one.update(Xs);
      for (Eigen::Index r = 0; r < 1000; r += 96) blocks.update(Xs.middleRows(r, std::min<Eigen::Index>(96, 1000 - r)));
      const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Xr = Xs;
      rows.update(Xr);
      expr.update(Xs.array().matrix() + Mat<TestType>::Zero(1000, 3));  // an expression: evaluated in chunks
      for (const auto* st : {&one, &blocks, &rows, &expr}) {
        const Eigen::VectorXd err = (st->m2() - e.m2).cwiseQuotient(e.m2).cwiseAbs();
        INFO("relative error " << err.maxCoeff());
        CHECK(err.maxCoeff() <= 4e-14);
      }
    }
  }
}
