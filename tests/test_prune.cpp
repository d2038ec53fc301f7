// prune_layer: selection + compensation + report in one call.
#include <rcpu/prune.hpp>

#include "support.hpp"

// Every member of every public instantiation compiles.
template struct rcpu::PrunedLayer<float>;
template struct rcpu::PrunedLayer<double>;

using rcpu_test::Mat;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {


struct Setup {
  Eigen::MatrixXd W, X;
  Eigen::VectorXd b;
  rcpu::Statistics<double> st;
};

Setup make(std::uint32_t seed, Eigen::Index d_out, Eigen::Index d_in, Eigen::Index n) {
  Rng rng(seed);
  Setup s{rng.normal(d_out, d_in), rng.normal(n, 6) * rng.normal(6, d_in) + 0.5 * rng.normal(n, d_in),
          rng.normal(d_out, 1), rcpu::Statistics<double>(d_in)};
  s.X.rowwise() += rng.normal(1, d_in).row(0);
  s.st.update(s.X);
  return s;
}

}  // namespace

TEMPLATE_TEST_CASE("ratio 0 returns W", "[prune]", float, double) {
  const Setup s = make(51, 8, 16, 300);
  const Mat<TestType> W = s.W.cast<TestType>();
  for (auto c : {rcpu::Compensation::none, rcpu::Compensation::rotation, rcpu::Compensation::bias}) {
    rcpu::PruneOptions o = rcpu::PruneOptions::channels(0.0);
    o.compensation = c;
    const auto r = rcpu::prune_layer(W, s.st, o);
    CHECK(r.kept_columns.size() == 16);
    CHECK(rel_diff(r.weight, W) <= tol<TestType>(1e-12, 1e-6));
    CHECK(r.report.after.relative_error <= 1e-6);
  }
}

TEMPLATE_TEST_CASE("heads are removed whole, floor(rho * heads) of them", "[prune]", float, double) {
  const Setup s = make(52, 24, 24, 400);  // o_proj-like: 6 heads of 4 columns
  const Mat<TestType> W = s.W.cast<TestType>();
  const auto r = rcpu::prune_layer(W, s.st, rcpu::PruneOptions::heads(4, 0.34));
  REQUIRE(r.kept_units.size() == 4);  // floor(0.34 * 6) = 2 removed
  REQUIRE(r.kept_columns.size() == 16);
  REQUIRE(r.weight.cols() == 16);
  for (std::size_t i = 0; i < r.kept_units.size(); ++i)
    for (int c = 0; c < 4; ++c) CHECK(r.kept_columns[4 * i + c] == 4 * r.kept_units[i] + c);
  // The kept heads are the best-scoring ones.
  const Eigen::VectorXd scores = rcpu::unit_scores(W, s.st, rcpu::Score::rcpu, 4);
  CHECK(rel_diff(r.unit_scores, scores) == 0.0);
  CHECK(r.kept_units == rcpu::select_kept(scores, 0.34));
  CHECK(r.report.after.relative_error < r.report.before.relative_error);
}

TEMPLATE_TEST_CASE("prune_layer equals selection followed by compensate", "[prune]", float, double) {
  const Setup s = make(53, 10, 20, 300);
  const Mat<TestType> W = s.W.cast<TestType>();
  const Eigen::Matrix<TestType, Eigen::Dynamic, 1> b = s.b.cast<TestType>();
  for (auto score : {rcpu::Score::magnitude, rcpu::Score::wanda_sp, rcpu::Score::wanda_sp_rcpu, rcpu::Score::flap,
                     rcpu::Score::rcpu, rcpu::Score::rcpu_paper}) {
    rcpu::PruneOptions o = rcpu::PruneOptions::channels(0.3);
    o.score = score;
    o.compensation = rcpu::Compensation::rotation_bias;
    const auto r = rcpu::prune_layer(W, b, s.st, o);
    const auto kept = rcpu::select_kept(rcpu::unit_scores(W, s.st, score), 0.3);
    CHECK(r.kept_columns == kept);
    const auto c = rcpu::compensate(W, b, s.st, kept, rcpu::Compensation::rotation_bias);
    CHECK(rel_diff(r.weight, c.weight) == 0.0);
    CHECK(rel_diff(r.bias, c.bias) == 0.0);
    CHECK(r.report.after.relative_error == c.report.after.relative_error);
  }
}

TEMPLATE_TEST_CASE("an explicit kept set overrides ratio and score", "[prune]", float, double) {
  const Setup s = make(54, 8, 12, 200);
  const Mat<TestType> W = s.W.cast<TestType>();
  rcpu::PruneOptions o = rcpu::PruneOptions::heads(3, 0.9);
  o.kept_units = {3, 0};
  const auto r = rcpu::prune_layer(W, s.st, o);
  CHECK(r.kept_units == std::vector<rcpu::Index>{0, 3});
  CHECK(r.kept_columns == std::vector<rcpu::Index>{0, 1, 2, 9, 10, 11});
  CHECK(r.unit_scores.size() == 0);
}

TEMPLATE_TEST_CASE("prune_layer rejects bad input and changes nothing", "[prune][errors]", float, double) {
  const Setup s = make(55, 6, 12, 100);
  const Mat<TestType> W = s.W.cast<TestType>();
  const Eigen::MatrixXd gram_before = s.st.gram();
  auto throws = [&](const rcpu::PruneOptions& o) { CHECK_THROWS_AS(rcpu::prune_layer(W, s.st, o), rcpu::invalid_argument); };
  throws(rcpu::PruneOptions::channels(1.0));
  throws(rcpu::PruneOptions::channels(-0.1));
  throws(rcpu::PruneOptions::heads(5, 0.2));  // 5 does not divide 12
  rcpu::PruneOptions o = rcpu::PruneOptions::heads(4, 0.2);
  o.kept_units = {0, 3};  // only 3 heads
  throws(o);
  o.kept_units = {1, 1};
  throws(o);
  rcpu::Statistics<double> empty(12);
  CHECK_THROWS_AS(rcpu::prune_layer(W, empty, rcpu::PruneOptions::channels(0.2)), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::prune_layer(W, Eigen::VectorXd::Zero(5), s.st, rcpu::PruneOptions::channels(0.2)),
                  rcpu::invalid_argument);
  try {
    rcpu::prune_layer(W, rcpu::Statistics<double>(11), rcpu::PruneOptions::channels(0.2));
    FAIL("expected rcpu::invalid_argument");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("6x12") != std::string::npos);
  }
  CHECK(rel_diff(s.st.gram(), gram_before) == 0.0);
}
