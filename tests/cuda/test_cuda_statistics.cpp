// rcpu::cuda::DeviceStatistics against rcpu::Statistics: every element type, both storage orders,
// float and double accumulation, uneven blocks, merging, and bad input.
#include "cuda_support.hpp"

using namespace rcpu_cuda_test;
using rcpu_test::rel_diff;

namespace {

const DataType all_types[] = {DataType::f32, DataType::f64, DataType::f16, DataType::bf16};
const StorageOrder both_orders[] = {StorageOrder::row_major, StorageOrder::col_major};

// CPU reference on the values the device saw, streamed in the same blocks.
rcpu::Statistics<double> reference(const Eigen::MatrixXd& values, const std::vector<Index>& cuts,
                                   rcpu::GramMode mode = rcpu::GramMode::full) {
  rcpu::Statistics<double> st(values.cols(), mode);
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) st.update(values.middleRows(cuts[i], cuts[i + 1] - cuts[i]));
  return st;
}

template <typename Acc>
void check_equal(const rcpu::Statistics<float, Acc>& got, const rcpu::Statistics<double>& ref, double t) {
  REQUIRE(got.tokens() == ref.tokens());
  REQUIRE(got.channels() == ref.channels());
  CHECK(max_rel(got.sum().template cast<double>(), ref.sum(), 1.0) <= t);
  CHECK(max_rel(got.abs_sum().template cast<double>(), ref.abs_sum()) <= t);
  CHECK(max_rel(got.sq_sum().template cast<double>(), ref.sq_sum()) <= t);
  CHECK(max_rel(got.m2().template cast<double>(), ref.m2()) <= t);
  CHECK(max_rel(got.mean().template cast<double>(), ref.mean(), 1.0) <= t);
  if (ref.has_gram()) {
    REQUIRE(got.has_gram());
    CHECK(rel_diff(got.gram(), ref.gram()) <= t);
    // Exactly symmetric after download.
    CHECK((got.gram() - got.gram().transpose()).norm() == 0.0);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("device statistics equal the CPU's for every type, order and block split", "[cuda][statistics]",
                   float, double) {
  using Acc = TestType;
  const Eigen::MatrixXd X = activations(11, 301, 37);
  const std::vector<Index> cuts = {0, 100, 101, 301};  // uneven blocks, one of a single token
  for (DataType type : all_types) {
    for (StorageOrder order : both_orders) {
      for (rcpu::cuda::GramKernel kernel :
           {rcpu::cuda::GramKernel::automatic, rcpu::cuda::GramKernel::syrk, rcpu::cuda::GramKernel::gemm}) {
        INFO("type " << rcpu::cuda::to_string(type) << ", order " << rcpu::cuda::to_string(order) << ", kernel "
                     << rcpu::cuda::to_string(kernel));
        rcpu::cuda::DeviceStatisticsOptions opt;
        opt.gram_kernel = kernel;
        rcpu::cuda::DeviceStatistics<Acc> st(ctx(), 37, rcpu::GramMode::full, opt);
        Eigen::MatrixXd seen(301, 37);
        std::vector<DeviceBlock> blocks;
        for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
          const Index r0 = cuts[i], len = cuts[i + 1] - cuts[i];
          blocks.push_back(make_block(X.middleRows(r0, len), type, order, /*pad=*/3));
          seen.middleRows(r0, len) = blocks.back().values;
          st.update(blocks.back().block);
        }
        CHECK(st.tokens() == 301);
        const auto got = st.template download<float>();
        // Double sums of exactly representable inputs agree to rounding; a float Gram to float rounding.
        check_equal(got, reference(seen, cuts), std::is_same<Acc, double>::value ? 1e-12 : 2e-5);
      }
    }
  }
}

TEMPLATE_TEST_CASE("long blocks and many channels exercise every chunk and tile path", "[cuda][statistics]", float,
                   double) {
  using Acc = TestType;
  const Eigen::MatrixXd X = activations(12, 5000, 300, 30.0);  // |mean| >> std on channel 2
  for (StorageOrder order : both_orders) {
    INFO("order " << rcpu::cuda::to_string(order));
    rcpu::cuda::DeviceStatistics<Acc> st(ctx(), 300);
    const DeviceBlock b = make_block(X, DataType::f32, order);
    st.update(b.block);
    check_equal(st.template download<float>(), reference(b.values, {0, 5000}),
                std::is_same<Acc, double>::value ? 1e-11 : 1e-4);
    // The variance of the loud-offset channel keeps its accuracy (two-pass block m2 + Chan).
    const auto cpu = reference(b.values, {0, 5000});
    const auto gpu = st.template download<double>();
    CHECK(std::abs(gpu.variance()(2) - cpu.variance()(2)) <= (std::is_same<Acc, double>::value ? 1e-9 : 1e-3) * cpu.variance()(2));
  }
}

TEMPLATE_TEST_CASE("merge equals one pass; self-merge doubles; CPU round trip", "[cuda][statistics]", float, double) {
  using Acc = TestType;
  const double t = std::is_same<Acc, double>::value ? 1e-12 : 2e-5;
  const Eigen::MatrixXd X = activations(13, 250, 20);
  const DeviceBlock a = make_block(X.topRows(90), DataType::f64, StorageOrder::row_major);
  const DeviceBlock b = make_block(X.bottomRows(160), DataType::f32, StorageOrder::col_major);
  rcpu::cuda::DeviceStatistics<Acc> sa(ctx(), 20), sb(ctx(), 20), all(ctx(), 20), empty(ctx(), 20);
  sa.update(a.block);
  sb.update(b.block);
  all.update(a.block).update(b.block);
  sa.merge(sb).merge(empty);
  Eigen::MatrixXd seen(250, 20);
  seen << a.values, b.values;
  check_equal(sa.template download<float>(), reference(seen, {0, 90, 250}), t);
  check_equal(all.template download<float>(), reference(seen, {0, 90, 250}), t);

  // this + this
  rcpu::cuda::DeviceStatistics<Acc> twice(ctx(), 20);
  twice.update(a.block);
  twice.merge(twice);
  Eigen::MatrixXd doubled(180, 20);
  doubled << a.values, a.values;
  check_equal(twice.template download<float>(), reference(doubled, {0, 90, 180}), t);

  // CPU -> device -> CPU is exact.
  const auto cpu = reference(seen, {0, 250});
  const auto dev = rcpu::cuda::DeviceStatistics<double>::from_host(ctx(), cpu);
  const auto back = dev.download<double>();
  CHECK(back.tokens() == cpu.tokens());
  CHECK((back.gram() - cpu.gram()).norm() == 0.0);
  CHECK((back.m2() - cpu.m2()).norm() == 0.0);
  CHECK((back.sum() - cpu.sum()).norm() == 0.0);
  // Reset forgets everything.
  sa.reset();
  CHECK(sa.tokens() == 0);
  CHECK(sa.template download<float>().sum().isZero(0));
}

TEST_CASE("diagonal mode keeps no Gram; device views and moments", "[cuda][statistics]") {
  const Eigen::MatrixXd X = activations(14, 120, 9);
  const DeviceBlock b = make_block(X, DataType::bf16, StorageOrder::row_major, 1);
  rcpu::cuda::DeviceStatistics<double> st(ctx(), 9, rcpu::GramMode::diagonal);
  st.update(b.block);
  CHECK_FALSE(st.has_gram());
  CHECK_THROWS_AS(st.gram(), rcpu::invalid_argument);
  const auto got = st.download<float>();
  CHECK_FALSE(got.has_gram());
  const auto ref = reference(b.values, {0, 120}, rcpu::GramMode::diagonal);
  CHECK(max_rel(got.m2(), ref.m2()) <= 1e-12);
  const rcpu::cuda::Moments m = st.download_moments();
  CHECK(m.tokens == 120);
  CHECK(max_rel(m.abs_sum, ref.abs_sum()) <= 1e-12);
  CHECK(max_rel(m.mean, ref.mean(), 1.0) <= 1e-12);
  CHECK(st.sum().rows == 9);
  CHECK(st.sum().cols == 1);
}

TEST_CASE("a device matrix with one row per token is a column-major block", "[cuda][statistics]") {
  const Eigen::MatrixXd X = activations(15, 64, 7);
  const auto dX = up<double>(X);
  rcpu::cuda::DeviceStatistics<double> st(ctx(), 7);
  st.update(dX);
  rcpu::Statistics<double> ref(7);
  ref.update(X);
  check_equal(st.download<float>(), ref, 1e-12);
}

TEST_CASE("bad blocks throw rcpu::invalid_argument and leave the statistics unchanged", "[cuda][statistics]") {
  const Eigen::MatrixXd X = activations(16, 50, 6);
  const DeviceBlock good = make_block(X, DataType::f32, StorageOrder::row_major);
  rcpu::cuda::DeviceStatistics<double> st(ctx(), 6);
  st.update(good.block);
  const auto before = st.download<double>();

  const DeviceBlock wrong = make_block(X.leftCols(5), DataType::f32, StorageOrder::row_major);
  CHECK_THROWS_AS(st.update(wrong.block), rcpu::invalid_argument);
  rcpu::cuda::TokenBlock bad_ld = good.block;
  bad_ld.ld = 5;
  CHECK_THROWS_AS(st.update(bad_ld), rcpu::invalid_argument);
  rcpu::cuda::TokenBlock null_data = good.block;
  null_data.data = nullptr;
  CHECK_THROWS_AS(st.update(null_data), rcpu::invalid_argument);

  Eigen::MatrixXd Xn = X;
  Xn(17, 4) = std::numeric_limits<double>::quiet_NaN();
  const DeviceBlock nan_block = make_block(Xn, DataType::f16, StorageOrder::col_major);
  try {
    st.update(nan_block.block);
    FAIL("no throw");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("NaN or Inf") != std::string::npos);
    CHECK(std::string(e.what()).find("channel 4") != std::string::npos);
  }
  const auto after = st.download<double>();
  CHECK(after.tokens() == before.tokens());
  CHECK((after.gram() - before.gram()).norm() == 0.0);
  CHECK((after.m2() - before.m2()).norm() == 0.0);

  rcpu::cuda::DeviceStatistics<double> other(ctx(), 7);
  CHECK_THROWS_AS(st.merge(other), rcpu::invalid_argument);
  rcpu::cuda::DeviceStatistics<double> diag(ctx(), 6, rcpu::GramMode::diagonal);
  CHECK_THROWS_AS(st.merge(diag), rcpu::invalid_argument);
  // An empty block is a no-op.
  st.update(rcpu::cuda::TokenBlock::row_major(nullptr, DataType::f32, 0, 6));
  CHECK(st.tokens() == 50);
}
