// Gram accumulation: rcpu::Statistics::update over 8192 tokens in 512-token blocks, against
// OpenBLAS ?SYRK on the same blocks (and Eigen's rank update, the pure-Eigen fallback).
// GFLOP/s counted as N d^2 (one triangle). Built twice: bench_gram (rcpu with CBLAS) and
// bench_gram_eigen (the same source with RCPU_NO_BLAS: rcpu on pure Eigen).
#include <map>
#include <memory>
#include <tuple>

#include <rcpu/statistics.hpp>

#include "common.hpp"

namespace {

using bench::Index;
constexpr Index block_rows = 512;

// Token blocks of one configuration, made once and shared by every benchmark that reads them.
template <typename S, bool RowMajor>
using Block = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, RowMajor ? Eigen::RowMajor : Eigen::ColMajor>;

template <typename S, bool RowMajor>
const std::vector<Block<S, RowMajor>>& blocks(Index d, Index tokens) {
  static std::map<std::pair<Index, Index>, std::unique_ptr<std::vector<Block<S, RowMajor>>>> cache;
  auto& slot = cache[{d, tokens}];
  if (!slot) {
    slot = std::make_unique<std::vector<Block<S, RowMajor>>>();
    std::srand(unsigned(d));
    for (Index t = 0; t < tokens; t += block_rows) slot->push_back(Block<S, RowMajor>::Random(block_rows, d));
  }
  return *slot;
}

void set_rate(benchmark::State& state, Index d, Index tokens) {
  state.counters["flops"] = benchmark::Counter(double(tokens) * double(d) * double(d),
                                               benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

template <typename S, bool RowMajor>
void rcpu_update(benchmark::State& state, Index d, Index tokens, rcpu::GramPrecision precision) {
  const auto& bs = blocks<S, RowMajor>(d, tokens);
  rcpu::Statistics<S> st(d, rcpu::GramMode::full, precision);
  for (auto _ : state) {
    state.PauseTiming();
    st.reset();
    state.ResumeTiming();
    for (const auto& b : bs) st.update(b);
    benchmark::DoNotOptimize(st.gram().data());  // includes the final flush and symmetrization
  }
  set_rate(state, d, tokens);
}

template <typename S, bool RowMajor>
void openblas_syrk(benchmark::State& state, Index d, Index tokens) {
  const auto& bs = blocks<S, RowMajor>(d, tokens);
  bench::Mat<S> C(d, d);
  for (auto _ : state) {
    state.PauseTiming();
    C.setZero();
    state.ResumeTiming();
    // Row-major N x d is the column-major d x N matrix X^T: C += A A^T; column-major: C += A^T A.
    for (const auto& b : bs)
      bench::syrk(RowMajor ? CblasNoTrans : CblasTrans, int(d), int(block_rows), b.data(),
                  int(RowMajor ? d : block_rows), S(1), C.data());
    benchmark::DoNotOptimize(C.data());
  }
  set_rate(state, d, tokens);
}

template <typename S, bool RowMajor>
void eigen_rank_update(benchmark::State& state, Index d, Index tokens) {
  const auto& bs = blocks<S, RowMajor>(d, tokens);
  bench::Mat<S> C(d, d);
  for (auto _ : state) {
    state.PauseTiming();
    C.setZero();
    state.ResumeTiming();
    for (const auto& b : bs) C.template selfadjointView<Eigen::Lower>().rankUpdate(b.transpose());
    benchmark::DoNotOptimize(C.data());
  }
  set_rate(state, d, tokens);
}

template <typename S, bool RowMajor>
void register_config(Index d, Index tokens, int reps, bool with_eigen) {
  const std::string tail = std::string(std::is_same<S, float>::value ? "float" : "double") + "/" +
                           (RowMajor ? "row" : "col") + "/" + std::to_string(d);
  auto add = [&](const std::string& name, auto fn) {
    auto* b = benchmark::RegisterBenchmark(("gram/" + name + "/" + tail).c_str(), fn);
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (reps > 1) b->Repetitions(reps);
  };
  add("rcpu", [=](benchmark::State& s) { rcpu_update<S, RowMajor>(s, d, tokens, rcpu::GramPrecision::accumulator); });
  if (std::is_same<S, float>::value)
    add("rcpu_input_blocks",
        [=](benchmark::State& s) { rcpu_update<S, RowMajor>(s, d, tokens, rcpu::GramPrecision::input_blocks); });
#ifndef RCPU_NO_BLAS
  add("syrk", [=](benchmark::State& s) { openblas_syrk<S, RowMajor>(s, d, tokens); });
#endif
  if (with_eigen) add("eigen", [=](benchmark::State& s) { eigen_rank_update<S, RowMajor>(s, d, tokens); });
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main(argc, argv, [](bool smoke) {
    const Index tokens = smoke ? 1024 : 8192;
    const std::vector<Index> dims = smoke ? std::vector<Index>{64} : std::vector<Index>{576, 1536, 4096, 11008};
    for (Index d : dims) {
#ifdef RCPU_NO_BLAS
      if (d > 4096) continue;  // rcpu on pure Eigen against Eigen's rank update: minutes at 11008
#endif
      const int reps = smoke ? 1 : 3;
      const bool with_eigen = d <= 4096;  // Eigen's rank update at d = 11008 takes minutes
      register_config<double, false>(d, tokens, reps, with_eigen);
      register_config<double, true>(d, tokens, reps, with_eigen);
      register_config<float, false>(d, tokens, reps, with_eigen);
      register_config<float, true>(d, tokens, reps, with_eigen);
    }
  });
}
