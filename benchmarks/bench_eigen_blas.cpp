// Is Eigen's own BLAS back end (EIGEN_USE_BLAS, this translation unit only) as fast as calling
// CBLAS directly? Eigen maps a selfadjoint rank update to ?syrk_ and a product to ?gemm_; this
// measures the overhead of that mapping on rcpu's two hot shapes. (rcpu calls CBLAS directly:
// EIGEN_USE_BLAS changes every Eigen product of every translation unit of a program, which a
// header-only library must not impose on its users.)
#include "common.hpp"

namespace {

using bench::Index;

void eigen_rank_update(benchmark::State& state, Index d) {
  const Eigen::MatrixXd X = Eigen::MatrixXd::Random(512, d);
  Eigen::MatrixXd C = Eigen::MatrixXd::Zero(d, d);
  for (auto _ : state) {
    C.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["flops"] = benchmark::Counter(512.0 * double(d) * double(d), benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

void cblas_rank_update(benchmark::State& state, Index d) {
  const Eigen::MatrixXd X = Eigen::MatrixXd::Random(512, d);
  Eigen::MatrixXd C = Eigen::MatrixXd::Zero(d, d);
  for (auto _ : state) {
    bench::syrk(CblasTrans, int(d), 512, X.data(), 512, 1.0, C.data());
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["flops"] = benchmark::Counter(512.0 * double(d) * double(d), benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

void eigen_gemm(benchmark::State& state, Index d) {
  const Eigen::MatrixXd A = Eigen::MatrixXd::Random(d, d), B = Eigen::MatrixXd::Random(d, d);
  Eigen::MatrixXd C(d, d);
  for (auto _ : state) {
    C.noalias() = A * B.transpose();
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["flops"] = benchmark::Counter(2.0 * double(d) * double(d) * double(d),
                                               benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

void cblas_gemm(benchmark::State& state, Index d) {
  const Eigen::MatrixXd A = Eigen::MatrixXd::Random(d, d), B = Eigen::MatrixXd::Random(d, d);
  Eigen::MatrixXd C(d, d);
  for (auto _ : state) {
    bench::gemm<double>(CblasNoTrans, CblasTrans, int(d), int(d), int(d), A.data(), int(d), B.data(), int(d), C.data(),
                        int(d));
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["flops"] = benchmark::Counter(2.0 * double(d) * double(d) * double(d),
                                               benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main(argc, argv, [](bool smoke) {
    const std::vector<Index> dims = smoke ? std::vector<Index>{64} : std::vector<Index>{576, 4096};
    for (Index d : dims) {
      const std::string s = "/double/" + std::to_string(d);
      auto add = [&](const std::string& name, auto fn) {
        auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (!smoke) b->Repetitions(3);
      };
      add("eigen_blas/rank_update/eigen_use_blas" + s, [d](benchmark::State& st) { eigen_rank_update(st, d); });
      add("eigen_blas/rank_update/cblas" + s, [d](benchmark::State& st) { cblas_rank_update(st, d); });
      add("eigen_blas/gemm/eigen_use_blas" + s, [d](benchmark::State& st) { eigen_gemm(st, d); });
      add("eigen_blas/gemm/cblas" + s, [d](benchmark::State& st) { cblas_gemm(st, d); });
    }
  });
}
