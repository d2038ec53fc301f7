// Procrustes: rcpu::Procrustes (every route) against LAPACK ?gesdd + one GEMM and against Eigen's
// BDCSVD + one GEMM, on full-rank and rank-deficient (rank 0.8 d) M, float and double. Each
// benchmark also reports its accuracy against ?gesdd: ||Q^T Q - I||_F ("orth") and the relative
// deficit of the objective tr(Q^T M) ("trace_deficit"; ||Y - Q Z||^2 = ||Y||^2 + ||Z||^2 - 2 tr(Q^T M)).
#include <map>
#include <memory>
#include <tuple>

#include <rcpu/procrustes.hpp>  // before Eigen (rcpu/detail/intrinsics.hpp)

#include <Eigen/SVD>

#include "common.hpp"

namespace {

using bench::Index;

template <typename S>
const bench::Mat<S>& matrix(const std::string& kind, Index d) {
  static std::map<std::pair<std::string, Index>, std::unique_ptr<bench::Mat<S>>> cache;
  auto& slot = cache[{kind, d}];
  if (!slot) {
    Eigen::MatrixXd M;
    if (kind == "full") {
      M = bench::normal<Eigen::MatrixXd>(d, d, std::uint32_t(d));
    } else {  // rank 0.8 d, as for o_proj with a fifth of the heads removed
      const Index r = Index(0.8 * double(d));
      M = bench::normal<Eigen::MatrixXd>(d, r, std::uint32_t(d) + 1) *
          bench::normal<Eigen::MatrixXd>(r, d, std::uint32_t(d) + 2);
    }
    slot = std::make_unique<bench::Mat<S>>(M.cast<S>());
  }
  return *slot;
}

// The optimum tr(S) from ?gesdd's singular values (once per configuration, outside the timings).
template <typename S>
double reference_trace(const std::string& kind, Index d) {
  static std::map<std::pair<std::string, Index>, double> cache;
  auto it = cache.find({kind, d});
  if (it != cache.end()) return it->second;
  bench::Mat<S> Q;
  bench::gesdd_procrustes<S>(matrix<S>(kind, d), Q);
  const double tr = double(Q.cwiseProduct(matrix<S>(kind, d)).sum());
  cache[{kind, d}] = tr;
  return tr;
}

template <typename S>
void report_accuracy(benchmark::State& state, const std::string& kind, Index d, const bench::Mat<S>& Q) {
  const bench::Mat<S>& M = matrix<S>(kind, d);
  const Eigen::MatrixXd Qd = Q.template cast<double>();
  bench::Mat<double> E(d, d);
  bench::gemm<double>(CblasTrans, CblasNoTrans, int(d), int(d), int(d), Qd.data(), int(d), Qd.data(), int(d), E.data(),
                      int(d));
  E.diagonal().array() -= 1.0;
  const double tr_ref = reference_trace<S>(kind, d);
  state.counters["orth"] = E.norm();
  state.counters["trace_deficit"] = (tr_ref - Qd.cwiseProduct(M.template cast<double>()).sum()) / tr_ref;
}

template <typename S>
void rcpu_route(benchmark::State& state, const std::string& kind, Index d, rcpu::ProcrustesMethod method) {
  const bench::Mat<S>& M = matrix<S>(kind, d);
  rcpu::Procrustes<S> p;
  for (auto _ : state) {
    p.compute(M, {method, false});
    benchmark::DoNotOptimize(p.rotation().data());
  }
  state.SetLabel(rcpu::to_string(p.method()));
  report_accuracy<S>(state, kind, d, p.rotation());
}

template <typename S>
void gesdd_route(benchmark::State& state, const std::string& kind, Index d) {
  const bench::Mat<S>& M = matrix<S>(kind, d);
  bench::Mat<S> Q;
  for (auto _ : state) {
    bench::gesdd_procrustes<S>(M, Q);
    benchmark::DoNotOptimize(Q.data());
  }
  report_accuracy<S>(state, kind, d, Q);
}

template <typename S>
void bdcsvd_route(benchmark::State& state, const std::string& kind, Index d) {
  const bench::Mat<S>& M = matrix<S>(kind, d);
  bench::Mat<S> Q(d, d);
  for (auto _ : state) {
    Eigen::BDCSVD<bench::Mat<S>> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
    bench::gemm<S>(CblasNoTrans, CblasTrans, int(d), int(d), int(d), svd.matrixU().data(), int(d),
                   svd.matrixV().data(), int(d), Q.data(), int(d));
    benchmark::DoNotOptimize(Q.data());
  }
  report_accuracy<S>(state, kind, d, Q);
}

template <typename S>
void register_config(const std::string& kind, Index d, bool smoke) {
  const bool dbl = std::is_same<S, double>::value;
  const std::string tail = std::string(dbl ? "double" : "float") + "/" + kind + "/" + std::to_string(d);
  const int reps = smoke ? 1 : 3;
  auto add = [&](const std::string& name, auto fn, int r) {
    auto* b = benchmark::RegisterBenchmark(("procrustes/" + name + "/" + tail).c_str(), fn);
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (r > 1) b->Repetitions(r);
  };
  using PM = rcpu::ProcrustesMethod;
#ifdef RCPU_NO_BLAS
  // rcpu on pure Eigen: its default route against Eigen's BDCSVD (Eigen's eigen-solver and SVD take
  // minutes at d = 4096: up to 2048 only).
  if (d > 2048) return;
  add("rcpu", [=](benchmark::State& s) { rcpu_route<S>(s, kind, d, PM::automatic); }, reps);
  add("bdcsvd", [=](benchmark::State& s) { bdcsvd_route<S>(s, kind, d); }, reps);
  return;
#endif
  add("rcpu", [=](benchmark::State& s) { rcpu_route<S>(s, kind, d, PM::automatic); }, reps);
  add("gesdd", [=](benchmark::State& s) { gesdd_route<S>(s, kind, d); }, reps);
  // The other routes, measured to pick the default: once at d = 4096 (they take tens of seconds).
  const int other_reps = d >= 4096 ? 1 : reps;
  add("rcpu_newton", [=](benchmark::State& s) { rcpu_route<S>(s, kind, d, PM::newton); }, other_reps);
  if (dbl) add("rcpu_mixed", [=](benchmark::State& s) { rcpu_route<S>(s, kind, d, PM::mixed); }, other_reps);
  if (d <= 2048) add("bdcsvd", [=](benchmark::State& s) { bdcsvd_route<S>(s, kind, d); }, reps);
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main(argc, argv, [](bool smoke) {
    const std::vector<Index> dims = smoke ? std::vector<Index>{48} : std::vector<Index>{576, 1024, 2048, 4096};
    for (Index d : dims)
      for (const char* kind : {"full", "rankdef"}) {
        register_config<double>(kind, d, smoke);
        register_config<float>(kind, d, smoke);
      }
  });
}
