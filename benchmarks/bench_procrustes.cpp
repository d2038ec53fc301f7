// Procrustes: rcpu::Procrustes (every route) against LAPACK ?gesdd + one GEMM and against Eigen's
// BDCSVD + one GEMM, on full-rank and rank-deficient (rank 0.8 d) M, float and double, and
// rcpu::ProcrustesProduct on the compensation's product form of the rank-deficient case. Each
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

// The compensation's problem as it arrives, M = A W^T with A and W d x k (k = 0.8 d, o_proj with a
// fifth of the heads removed), and what it needs, Q W (d x k): rcpu's ProcrustesProduct (the reduced
// k x k route) against ?gesdd's route (form M, ?gesdd, Q = U V^T, Q W) and against rcpu's full route
// (form M, Procrustes, Q W: what compensate() did before the reduced route). Accuracy against the
// ?gesdd route: "isometry" = ||(Q W)^T Q W - W^T W||_F / ||W^T W||_F and "trace_deficit" as above.
template <typename S>
struct ProductProblem {
  bench::Mat<S> A, W;
  double trace_ref = 0;
};

template <typename S>
const ProductProblem<S>& product_problem(Index d) {
  static std::map<Index, std::unique_ptr<ProductProblem<S>>> cache;
  auto& slot = cache[d];
  if (!slot) {
    const Index k = Index(0.8 * double(d));
    slot = std::make_unique<ProductProblem<S>>();
    slot->W = bench::normal<Eigen::MatrixXd>(d, k, std::uint32_t(d) + 3).cast<S>();
    slot->A = (bench::normal<Eigen::MatrixXd>(d, k, std::uint32_t(d) + 4) + 0.5 * slot->W.template cast<double>())
                  .template cast<S>();
  }
  return *slot;
}

// Q W by the full routes: M = A W^T formed, solved by `solve` into Q, then Q W.
template <typename S, typename Solve>
void full_product(const ProductProblem<S>& p, bench::Mat<S>& QW, Solve&& solve) {
  const int d = int(p.A.rows()), k = int(p.A.cols());
  bench::Mat<S> M(d, d), Q;
  bench::gemm<S>(CblasNoTrans, CblasTrans, d, d, k, p.A.data(), d, p.W.data(), d, M.data(), d);
  solve(M, Q);
  QW.resize(d, k);
  bench::gemm<S>(CblasNoTrans, CblasNoTrans, d, k, d, Q.data(), d, p.W.data(), d, QW.data(), d);
}

template <typename S>
void report_product(benchmark::State& state, const ProductProblem<S>& p, const bench::Mat<S>& QW) {
  const Eigen::MatrixXd Qd = QW.template cast<double>(), Wd = p.W.template cast<double>();
  const Eigen::MatrixXd g = Wd.transpose() * Wd;
  state.counters["isometry"] = (Qd.transpose() * Qd - g).norm() / g.norm();
  const double tr = Qd.cwiseProduct(p.A.template cast<double>()).sum();
  state.counters["trace_deficit"] = p.trace_ref != 0 ? (p.trace_ref - tr) / p.trace_ref : 0.0;
}

template <typename S>
void product_route(benchmark::State& state, Index d, const std::string& route) {
  auto& p = const_cast<ProductProblem<S>&>(product_problem<S>(d));
  if (p.trace_ref == 0) {  // once, outside the timings
    bench::Mat<S> QW;
    full_product<S>(p, QW, [](const bench::Mat<S>& M, bench::Mat<S>& Q) { bench::gesdd_procrustes<S>(M, Q); });
    p.trace_ref = double(QW.template cast<double>().cwiseProduct(p.A.template cast<double>()).sum());
  }
  bench::Mat<S> QW;
  for (auto _ : state) {
    if (route == "rcpu") {
      rcpu::ProcrustesProduct<S> pp(p.A, p.W);
      QW = pp.rotated();
    } else if (route == "rcpu_full") {
      full_product<S>(p, QW, [](const bench::Mat<S>& M, bench::Mat<S>& Q) { Q = rcpu::Procrustes<S>(M).rotation(); });
    } else {
      full_product<S>(p, QW, [](const bench::Mat<S>& M, bench::Mat<S>& Q) { bench::gesdd_procrustes<S>(M, Q); });
    }
    benchmark::DoNotOptimize(QW.data());
  }
  report_product<S>(state, p, QW);
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
  if (kind == std::string("rankdef")) {
    // The same rank, as the compensation meets it: a product A W^T, Q W wanted.
    const std::string ptail = std::string(dbl ? "double" : "float") + "/product/" + std::to_string(d);
    for (const char* route : {"rcpu", "gesdd", "rcpu_full"}) {
      const std::string r = route;
      auto* b = benchmark::RegisterBenchmark(("procrustes/" + r + "/" + ptail).c_str(),
                                             [=](benchmark::State& s) { product_route<S>(s, d, r); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (reps > 1) b->Repetitions(reps);
    }
  }
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
