// Every score of METHOD.md section 3, recomputed here from raw activations, and the group rules.
#include <rcpu/scores.hpp>

#include "support.hpp"

using rcpu_test::rel_diff;
using rcpu_test::Rng;

namespace {

struct Problem {
  Eigen::MatrixXd W, X;  // d_out x d_in, N x d_in
};

Problem make_problem(std::uint32_t seed) {
  Rng rng(seed);
  Problem p;
  p.W = rng.normal(6, 12);
  p.X = rng.normal(300, 12);
  p.X.col(4).array() += 2.0;
  p.X.col(7) *= 5.0;
  return p;
}

// Column-wise population variance, mean |x| and L2 norm, straight from X.
Eigen::ArrayXd var_of(const Eigen::MatrixXd& X) {
  const Eigen::MatrixXd C = X.rowwise() - X.colwise().mean();
  return (C.cwiseAbs2().colwise().sum() / double(X.rows())).transpose().array();
}

}  // namespace

TEMPLATE_TEST_CASE("column scores match their formulas", "[scores]", float, double) {
  const Problem p = make_problem(11);
  const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> W = p.W.cast<TestType>();
  const Eigen::MatrixXd Wd = W.template cast<double>();  // the scores see W's rounded values
  rcpu::Statistics<double> st(12);
  st.update(p.X);

  const Eigen::ArrayXd norm = Wd.colwise().norm().transpose().array();
  const Eigen::ArrayXd abs_mean_w = Wd.cwiseAbs().colwise().mean().transpose().array();
  const Eigen::ArrayXd abs_sum_w = Wd.cwiseAbs().colwise().sum().transpose().array();
  const Eigen::ArrayXd x_abs = p.X.cwiseAbs().colwise().mean().transpose().array();
  const Eigen::ArrayXd x_l2 = p.X.colwise().norm().transpose().array();
  const Eigen::ArrayXd x_rms = x_l2 / std::sqrt(300.0);
  const Eigen::ArrayXd var = var_of(p.X);

  using rcpu::Score;
  const double t = 1e-12;
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::magnitude), norm.matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::wanda_sp), (abs_mean_w * x_rms).matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::wanda_sp_rcpu), (abs_sum_w * x_abs).matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::flap), (var * norm.square()).matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::flap, rcpu::Module::attention),
                 (var * norm.square()).square().matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::rcpu), (norm * x_abs * var).matrix()) <= t);
  CHECK(rel_diff(rcpu::column_scores(W, st, Score::rcpu_paper), (norm * x_l2 * var).matrix()) <= t);
}

TEST_CASE("standardize gives zero mean and unit sample deviation", "[scores]") {
  Eigen::VectorXd s(5);
  s << 1, 2, 3, 4, 10;
  const Eigen::VectorXd z = rcpu::standardize(s);
  CHECK(std::abs(z.mean()) <= 1e-15);
  CHECK(std::abs(z.squaredNorm() / 4.0 - 1.0) <= 1e-14);  // n - 1, as torch.std
  CHECK(rcpu::standardize(Eigen::VectorXd::Constant(4, 3.0)).isZero(0));
}

TEST_CASE("group scores: heads sum their columns, FLAP averages standardised columns", "[scores]") {
  Eigen::VectorXd c(6);
  c << 1, 2, 3, 4, 5, 9;
  const Eigen::VectorXd sums = rcpu::group_scores(c, 2, rcpu::GroupReduce::sum);
  REQUIRE(sums.size() == 3);
  CHECK(sums(0) == 3);
  CHECK(sums(1) == 7);
  CHECK(sums(2) == 14);
  const Eigen::VectorXd z = rcpu::standardize(c);
  const Eigen::VectorXd flap = rcpu::group_scores(c, 3, rcpu::GroupReduce::standardized_mean);
  REQUIRE(flap.size() == 2);
  CHECK(std::abs(flap(0) - z.head(3).mean()) <= 1e-15);
  CHECK(std::abs(flap(1) - z.tail(3).mean()) <= 1e-15);
  CHECK(rcpu::resolve(rcpu::GroupReduce::automatic, rcpu::Score::flap) == rcpu::GroupReduce::standardized_mean);
  CHECK(rcpu::resolve(rcpu::GroupReduce::automatic, rcpu::Score::rcpu) == rcpu::GroupReduce::sum);
}

TEMPLATE_TEST_CASE("unit scores combine column scores per head", "[scores]", float, double) {
  const Problem p = make_problem(12);
  const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> W = p.W.cast<TestType>();
  rcpu::Statistics<double> st(12);
  st.update(p.X);
  const Eigen::VectorXd cols = rcpu::column_scores(W, st, rcpu::Score::rcpu);
  const Eigen::VectorXd heads = rcpu::unit_scores(W, st, rcpu::Score::rcpu, 4);
  REQUIRE(heads.size() == 3);
  for (int h = 0; h < 3; ++h) CHECK(std::abs(heads(h) - cols.segment(4 * h, 4).sum()) <= 1e-12 * cols.norm());
  const Eigen::VectorXd flap_cols = rcpu::column_scores(W, st, rcpu::Score::flap, rcpu::Module::attention);
  const Eigen::VectorXd flap_heads =
      rcpu::unit_scores(W, st, rcpu::Score::flap, 4, rcpu::GroupReduce::automatic, rcpu::Module::attention);
  const Eigen::VectorXd z = rcpu::standardize(flap_cols);
  for (int h = 0; h < 3; ++h) CHECK(std::abs(flap_heads(h) - z.segment(4 * h, 4).mean()) <= 1e-12);
}

TEST_CASE("score names round-trip", "[scores]") {
  for (auto s : {rcpu::Score::magnitude, rcpu::Score::wanda_sp, rcpu::Score::wanda_sp_rcpu, rcpu::Score::flap,
                 rcpu::Score::rcpu, rcpu::Score::rcpu_paper})
    CHECK(rcpu::score_from_string(rcpu::to_string(s)) == s);
  CHECK_THROWS_AS(rcpu::score_from_string("wanda"), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("scores reject bad input", "[scores][errors]", float, double) {
  const Problem p = make_problem(13);
  Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> W = p.W.cast<TestType>();
  rcpu::Statistics<double> st(12), other(10), empty(12);
  st.update(p.X);
  CHECK_THROWS_AS(rcpu::column_scores(W, other, rcpu::Score::rcpu), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::column_scores(W, empty, rcpu::Score::rcpu), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::unit_scores(W, st, rcpu::Score::rcpu, 5), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::group_scores(Eigen::VectorXd::Ones(6), 4, rcpu::GroupReduce::sum), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::group_scores(Eigen::VectorXd::Ones(6), 0, rcpu::GroupReduce::sum), rcpu::invalid_argument);
  W(1, 1) = std::numeric_limits<TestType>::infinity();
  CHECK_THROWS_AS(rcpu::column_scores(W, st, rcpu::Score::magnitude), rcpu::invalid_argument);
}
