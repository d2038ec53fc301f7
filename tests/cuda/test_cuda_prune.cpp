// rcpu::cuda::prune_layer and the device scores against their CPU counterparts.
#include "cuda_support.hpp"

using namespace rcpu_cuda_test;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

struct Setup {
  Eigen::MatrixXd W, X;
  Eigen::VectorXd b;
  rcpu::Statistics<double> st;
};

Setup make(std::uint32_t seed, Index d_out, Index d_in, Index n) {
  Rng rng(seed);
  Setup s{rng.normal(d_out, d_in), activations(seed + 7, n, d_in, 0.5), rng.normal(d_out, 1),
          rcpu::Statistics<double>(d_in)};
  s.st.update(s.X);
  return s;
}

const rcpu::Score all_scores[] = {rcpu::Score::magnitude, rcpu::Score::wanda_sp, rcpu::Score::wanda_sp_rcpu,
                                  rcpu::Score::flap,      rcpu::Score::rcpu,     rcpu::Score::rcpu_paper};

}  // namespace

TEMPLATE_TEST_CASE("device scores equal the CPU's for every score, columns and heads", "[cuda][prune]", float, double) {
  const Setup s = make(41, 16, 32, 400);
  const Mat<TestType> W = s.W.cast<TestType>();
  const auto dW = up<TestType>(s.W);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), s.st);
  for (auto score : all_scores) {
    for (auto module : {rcpu::Module::mlp, rcpu::Module::attention}) {
      INFO("score " << rcpu::to_string(score));
      CHECK(max_rel(rcpu::cuda::column_scores(ctx(), dW, dst, score, module), rcpu::column_scores(W, s.st, score, module),
                    1e-300) <= 1e-12);
      const Eigen::VectorXd g = rcpu::cuda::unit_scores(ctx(), dW, dst, score, 4, rcpu::GroupReduce::automatic, module);
      const Eigen::VectorXd c = rcpu::unit_scores(W, s.st, score, 4, rcpu::GroupReduce::automatic, module);
      CHECK((g - c).cwiseAbs().maxCoeff() <= 1e-10 * std::max(1.0, c.cwiseAbs().maxCoeff()));
    }
  }
}

TEMPLATE_TEST_CASE("prune_layer equals the CPU's: heads of o_proj and channels of down_proj", "[cuda][prune]", float,
                   double) {
  const Setup att = make(42, 24, 24, 500);  // 6 heads of 4
  const Setup mlp = make(43, 12, 40, 500);
  for (bool heads : {true, false}) {
    const Setup& s = heads ? att : mlp;
    const Mat<TestType> W = s.W.cast<TestType>();
    const Vec<TestType> b = s.b.cast<TestType>();
    const auto dW = up<TestType>(s.W), db = up<TestType>(s.b);
    const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), s.st);
    for (auto method : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale, rcpu::Compensation::bias,
                        rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge}) {
      INFO((heads ? "heads, " : "channels, ") << rcpu::to_string(method));
      rcpu::PruneOptions o = heads ? rcpu::PruneOptions::heads(4, 0.34) : rcpu::PruneOptions::channels(0.3);
      o.compensation = method;
      o.compensation_options.lambda = 1.0;
      const auto ref = rcpu::prune_layer(W, b, s.st, o);
      const auto dev = rcpu::cuda::prune_layer(ctx(), dW, db, dst, o);
      CHECK(dev.kept_units == ref.kept_units);
      CHECK(dev.kept_columns == ref.kept_columns);
      CHECK(max_rel(dev.unit_scores, ref.unit_scores) <= 1e-10);
      const auto got = dev.to_host(ctx());
      CHECK(got.kept_columns == ref.kept_columns);
      const double tw = std::is_same<TestType, float>::value ? 5e-3 : 1e-8;
      CHECK(rel_diff(got.weight, ref.weight) <= tw);
      CHECK(rel_diff(got.bias, ref.bias) <= tw);
      CHECK(std::abs(got.report.after.relative_error - ref.report.after.relative_error) <= tol<TestType>(1e-8, 2e-3));
      CHECK(std::abs(got.report.before.relative_error - ref.report.before.relative_error) <= tol<TestType>(1e-8, 2e-3));
    }
  }
}

TEST_CASE("explicit kept units, no bias, ratio 0, and bad options", "[cuda][prune]") {
  const Setup s = make(44, 8, 16, 300);
  const auto dW = up<double>(s.W);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), s.st);
  rcpu::PruneOptions o = rcpu::PruneOptions::channels(0.5);
  o.kept_units = {9, 1, 4, 12, 15, 0};
  const auto ref = rcpu::prune_layer(s.W, s.st, o);
  const auto dev = rcpu::cuda::prune_layer(ctx(), dW, dst, o);
  CHECK(dev.kept_units == std::vector<Index>{0, 1, 4, 9, 12, 15});
  CHECK(dev.kept_columns == ref.kept_columns);
  CHECK(dev.unit_scores.size() == 0);
  CHECK(rel_diff(down(dev.weight), ref.weight) <= 1e-8);
  CHECK_FALSE(dev.has_bias());

  const auto all = rcpu::cuda::prune_layer(ctx(), dW, dst, rcpu::PruneOptions::channels(0.0));
  CHECK(all.kept_columns.size() == 16);
  CHECK(rel_diff(down(all.weight), s.W) <= 1e-10);

  rcpu::PruneOptions bad = rcpu::PruneOptions::channels(1.0);
  CHECK_THROWS_AS(rcpu::cuda::prune_layer(ctx(), dW, dst, bad), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::cuda::prune_layer(ctx(), dW, dst, rcpu::PruneOptions::heads(5, 0.2)), rcpu::invalid_argument);
  rcpu::PruneOptions repeated = rcpu::PruneOptions::channels(0.2);
  repeated.kept_units = {1, 1};
  CHECK_THROWS_AS(rcpu::cuda::prune_layer(ctx(), dW, dst, repeated), rcpu::invalid_argument);
}
