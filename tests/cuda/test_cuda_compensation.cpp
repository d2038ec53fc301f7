// rcpu::cuda::compensate against rcpu::compensate on the same statistics: every method, with and
// without bias, geometry on, float and double, full-rank and rank-deficient M, every cuSOLVER route.
#include "cuda_support.hpp"

using namespace rcpu_cuda_test;
using rcpu::cuda::ProcrustesSolver;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

const rcpu::Compensation all_methods[] = {
    rcpu::Compensation::none,           rcpu::Compensation::bias,          rcpu::Compensation::rotation,
    rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias, rcpu::Compensation::least_squares,
    rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge};

struct Layer {
  Eigen::MatrixXd W, X;
  Eigen::VectorXd b;
  rcpu::Statistics<double> st;
};

Layer make_layer(std::uint32_t seed, Index d_out, Index d_in, Index n) {
  Rng rng(seed);
  Layer L{rng.normal(d_out, d_in) / std::sqrt(double(d_in)), activations(seed + 1000, n, d_in, 0.0),
          rng.normal(d_out, 1), rcpu::Statistics<double>(d_in)};
  L.st.update(L.X);
  return L;
}

void check_comparison(const rcpu::OutputComparison& a, const rcpu::OutputComparison& ref, double t, bool geometry) {
  CHECK(std::abs(a.relative_error - ref.relative_error) <= t);
  CHECK(std::abs(a.norm_ratio - ref.norm_ratio) <= t);
  CHECK(std::abs(a.cosine - ref.cosine) <= t);
  if (geometry) CHECK(std::abs(a.inner_product_distortion - ref.inner_product_distortion) <= t);
}

bool rotation_based(rcpu::Compensation m) {
  return m == rcpu::Compensation::rotation || m == rcpu::Compensation::rotation_scale ||
         m == rcpu::Compensation::rotation_bias || m == rcpu::Compensation::rotation_ridge;
}

template <typename Scalar>
void compare_all(const Layer& L, const std::vector<Index>& kept, bool full_rank_m) {
  const Mat<Scalar> W = L.W.cast<Scalar>();
  const Vec<Scalar> b = L.b.cast<Scalar>();
  const auto dW = up<Scalar>(L.W), db = up<Scalar>(L.b);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), L.st);
  rcpu::CompensationOptions opt;
  opt.lambda = 0.5;
  opt.geometry = true;
  const bool is_float = std::is_same<Scalar, float>::value;
  for (auto method : all_methods) {
    for (bool with_bias : {true, false}) {
      INFO("method " << rcpu::to_string(method) << (with_bias ? " with bias" : " without bias"));
      const auto ref = with_bias ? rcpu::compensate(W, b, L.st, kept, method, opt) : rcpu::compensate(W, L.st, kept, method, opt);
      const auto dev = with_bias ? rcpu::cuda::compensate(ctx(), dW, db, dst, kept, method, opt)
                                 : rcpu::cuda::compensate(ctx(), dW, dst, kept, method, opt);
      REQUIRE(ref.report.info == rcpu::Info::success);
      REQUIRE(dev.report.info == rcpu::Info::success);
      const auto got = dev.to_host(ctx());
      const bool ls = method == rcpu::Compensation::least_squares || method == rcpu::Compensation::proximal_ridge ||
                      method == rcpu::Compensation::rotation_ridge;
      const double tw = is_float ? (ls ? 5e-3 : 5e-4) : 1e-8;
      REQUIRE(got.weight.rows() == W.rows());
      REQUIRE(got.weight.cols() == Index(kept.size()));
      CHECK(rel_diff(got.weight, ref.weight) <= tw);
      REQUIRE(got.bias.size() == ref.bias.size());
      if (ref.bias.size()) CHECK(rel_diff(got.bias, ref.bias) <= tw);
      CHECK(std::abs(got.scale - ref.scale) <= (is_float ? 1e-4 : 1e-10) * std::abs(ref.scale));
      const double tr = is_float ? 2e-3 : 1e-8;
      check_comparison(got.report.before, ref.report.before, tr, true);
      check_comparison(got.report.after, ref.report.after, tr, true);
      CHECK(got.report.kept_columns == Index(kept.size()));
      CHECK(got.report.tokens == ref.report.tokens);
      CHECK(got.report.rows == ref.report.rows);
      CHECK(got.report.columns == ref.report.columns);
      if (rotation_based(method)) {
        CHECK(got.report.rank_m == ref.report.rank_m);
        const Index r = ref.report.rank_m;
        CHECK(max_rel(got.singular_values.head(r), ref.singular_values.head(r)) <= (is_float ? 1e-4 : 1e-9));
        const Eigen::MatrixXd Q = got.rotation.template cast<double>();
        CHECK((Q.transpose() * Q - Eigen::MatrixXd::Identity(Q.rows(), Q.rows())).norm() <= (is_float ? 1e-5 : 1e-10));
        if (full_rank_m) CHECK(rel_diff(got.rotation, ref.rotation) <= (is_float ? 5e-4 : 1e-8));
        CHECK(got.report.reflection_fixed == ref.report.reflection_fixed);
      } else {
        CHECK(got.rotation.size() == 0);
        CHECK(got.singular_values.size() == 0);
      }
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("every compensation equals the CPU's: rank-deficient M (k < d_out)", "[cuda][compensation]", float,
                   double) {
  const Layer L = make_layer(31, 10, 16, 400);
  compare_all<TestType>(L, {12, 0, 2, 3, 5, 8, 9, 11, 15}, false);  // any order: the result follows it
}

TEMPLATE_TEST_CASE("every compensation equals the CPU's: full-rank M (k > d_out)", "[cuda][compensation]", float,
                   double) {
  const Layer L = make_layer(32, 8, 24, 500);
  std::vector<Index> kept;
  for (Index j = 0; j < 24; ++j)
    if (j % 3 != 1) kept.push_back(j);
  compare_all<TestType>(L, kept, true);
}

TEMPLATE_TEST_CASE("every cuSOLVER route gives the same compensated weight (Q W_K is unique)", "[cuda][compensation]",
                   float, double) {
  const Layer L = make_layer(33, 24, 24, 600);  // o_proj-like: d_in = d_out, heads of 4 columns
  const std::vector<Index> kept = rcpu::expand_groups({0, 2, 3, 5}, 4);
  const auto dW = up<TestType>(L.W);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), L.st);
  const auto ref = rcpu::compensate(L.W, L.st, kept, rcpu::Compensation::rotation);
  for (ProcrustesSolver s : {ProcrustesSolver::syevd, ProcrustesSolver::gesvd, ProcrustesSolver::gesvdj,
                             ProcrustesSolver::gesvdp}) {
    for (bool in_double : {true, false}) {
      INFO("solver " << rcpu::cuda::to_string(s) << (in_double ? ", double" : ", working precision"));
      rcpu::cuda::SolverOptions so;
      so.solver = s;
      so.solve_in_double = in_double;
      const auto dev = rcpu::cuda::compensate(ctx(), dW, dst, kept, rcpu::Compensation::rotation, {}, so);
      REQUIRE(dev.report.info == rcpu::Info::success);
      CHECK(rel_diff(down(dev.weight), ref.weight) <= tol<TestType>(1e-8, 1e-3));
      CHECK(std::abs(dev.report.after.relative_error - ref.report.after.relative_error) <= tol<TestType>(1e-8, 1e-3));
    }
  }
}

TEMPLATE_TEST_CASE("statistics accumulated on the device compensate as the CPU does on their download",
                   "[cuda][compensation]", float, double) {
  using Acc = TestType;
  const Layer L = make_layer(34, 12, 20, 300);
  const DeviceBlock blk = make_block(L.X, DataType::bf16, StorageOrder::row_major);
  rcpu::cuda::DeviceStatistics<Acc> dst(ctx(), 20);
  dst.update(blk.block);
  const auto cpu_st = dst.template download<float>();
  const std::vector<Index> kept = {1, 2, 4, 6, 7, 10, 11, 13, 14, 16, 19, 0};
  const auto dW = up<double>(L.W);
  rcpu::CompensationOptions opt;
  opt.scale_epsilon = 1e-6;
  for (auto method : {rcpu::Compensation::rotation_scale, rcpu::Compensation::proximal_ridge,
                      rcpu::Compensation::rotation_ridge}) {
    INFO("method " << rcpu::to_string(method));
    const auto ref = rcpu::compensate(L.W, cpu_st, kept, method, opt);
    const auto dev = rcpu::cuda::compensate(ctx(), dW, dst, kept, method, opt);
    // The float Gram is read as float on both sides; the products then run in double.
    CHECK(rel_diff(down(dev.weight), ref.weight) <= 1e-7);
    CHECK(std::abs(dev.report.after.relative_error - ref.report.after.relative_error) <= 1e-7);
  }
}

TEST_CASE("keeping every column: the rotation is the identity and W comes back", "[cuda][compensation]") {
  const Layer L = make_layer(35, 6, 12, 300);
  std::vector<Index> all(12);
  for (Index j = 0; j < 12; ++j) all[std::size_t(j)] = j;
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), L.st);
  const auto dev = rcpu::cuda::compensate(ctx(), up<double>(L.W), dst, all, rcpu::Compensation::rotation);
  CHECK(rel_diff(down(dev.weight), L.W) <= 1e-10);
  CHECK(dev.report.after.relative_error <= 1e-7);
  CHECK(dev.report.before.relative_error <= 1e-7);
}

TEST_CASE("a singular G_KK without ridge is a numerical issue, as on the CPU", "[cuda][compensation]") {
  Layer L = make_layer(36, 5, 10, 200);
  L.X.col(3).setZero();  // a dead channel
  L.st.reset();
  L.st.update(L.X);
  const std::vector<Index> kept = {0, 1, 3, 4, 6, 8};
  rcpu::CompensationOptions opt;
  opt.lambda = 0.0;
  const auto ref = rcpu::compensate(L.W, L.st, kept, rcpu::Compensation::least_squares, opt);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), L.st);
  const auto dev = rcpu::cuda::compensate(ctx(), up<double>(L.W), dst, kept, rcpu::Compensation::least_squares, opt);
  CHECK(ref.report.info == rcpu::Info::numerical_issue);
  CHECK(dev.report.info == rcpu::Info::numerical_issue);
  CHECK(down(dev.weight).allFinite());
  // The output error is still the least-squares optimum (the dead channel's weight is irrelevant).
  CHECK(std::abs(dev.report.after.relative_error - ref.report.after.relative_error) <= 1e-7);
}

TEST_CASE("bad input throws rcpu::invalid_argument before any work", "[cuda][compensation]") {
  const Layer L = make_layer(37, 4, 6, 100);
  const auto dW = up<double>(L.W), db = up<double>(L.b);
  const auto dst = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), L.st);
  const std::vector<Index> kept = {0, 2, 5};
  using rcpu::Compensation;
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, dst, {0, 6}, Compensation::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, dst, {}, Compensation::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, up<double>(Eigen::VectorXd::Ones(5)), dst, kept, Compensation::bias),
                  rcpu::invalid_argument);
  const rcpu::cuda::DeviceStatistics<double> wrong(ctx(), 7);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, wrong, kept, Compensation::none), rcpu::invalid_argument);
  const rcpu::cuda::DeviceStatistics<double> empty(ctx(), 6);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, empty, kept, Compensation::none), rcpu::invalid_argument);
  rcpu::Statistics<double> diag_cpu(6, rcpu::GramMode::diagonal);
  diag_cpu.update(L.X);
  const auto diag = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), diag_cpu);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, diag, kept, Compensation::rotation), rcpu::invalid_argument);
  CHECK_NOTHROW(rcpu::cuda::compensate(ctx(), dW, db, diag, kept, Compensation::bias));
  rcpu::CompensationOptions neg;
  neg.lambda = -1;
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, dst, kept, Compensation::least_squares, neg), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, dst, kept, Compensation::rotation_ridge, neg), rcpu::invalid_argument);
  neg.lambda = std::nan("");
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), dW, dst, kept, Compensation::rotation_ridge, neg), rcpu::invalid_argument);
  Eigen::MatrixXd Wn = L.W;
  Wn(1, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(rcpu::cuda::compensate(ctx(), up<double>(Wn), dst, kept, Compensation::none), rcpu::invalid_argument);
}
