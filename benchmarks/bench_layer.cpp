// One layer pruned from statistics with rcpu::prune_layer (score, select, compensate, report), at
// 20%, for LLaMA-7B and SmolLM2-135M shapes, against the sum of the BLAS/LAPACK kernels it needs
// (its lower bound: the same calls on ready, contiguous operands, without any glue), with peak memory.
//
// Peak memory ("peak_MiB") is measured per call: the freed heap is handed back to the kernel
// (malloc_trim), the peak resident set is reset to the current one (/proc/self/clear_refs), and
// the rise of VmHWM during the call is added to the bytes of the call's inputs (W, and the
// statistics with their Gram). Data cached for other shapes is thus not counted. "must_MiB" is
// the bytes of the matrices the computation must hold: W (float), G (double), and for the
// rotations M and the factors U, V (double, d_out^2 each) plus the output (weight and rotation,
// float); for the ridge the Cholesky factor of G_KK + lambda I (double, k^2) plus the output.
#include <map>
#include <memory>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <rcpu/prune.hpp>

#include "common.hpp"

namespace {

using bench::Index;

struct Shape {
  std::string name;
  Index d_out, d_in, head_dim;  // head_dim 1: MLP channels
};

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{"smollm2_o_proj", 576, 576, 64},
                                       {"smollm2_down_proj", 576, 1536, 1},
                                       {"llama7b_o_proj", 4096, 4096, 128},
                                       {"llama7b_down_proj", 4096, 11008, 1}};
  return s;
}

struct LayerData {
  Eigen::MatrixXf W;
  rcpu::Statistics<float> stats;
};

// W ~ N(0, 1/d_in) in float; statistics of 8192 tokens with an SPD Gram G = F F^T + diag, F of rank
// 64, built with from_sums (making G from real tokens would take longer than the benchmark).
const LayerData& layer(const Shape& sh) {
  static std::map<std::string, std::unique_ptr<LayerData>> cache;
  auto& slot = cache[sh.name];
  if (!slot) {
    const Index d = sh.d_in, n = 8192;
    Eigen::MatrixXd G(d, d);
    {
      const Eigen::MatrixXd F = bench::normal<Eigen::MatrixXd>(d, 64, 11);
      cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, int(d), 64, 1.0, F.data(), int(d), 0.0, G.data(), int(d));
      G = G.selfadjointView<Eigen::Lower>();
      G.diagonal().array() += 0.5 * double(n);
    }
    const Eigen::VectorXd sum = bench::normal<Eigen::MatrixXd>(d, 1, 12) * std::sqrt(double(n));
    const Eigen::VectorXd sq = G.diagonal();
    const Eigen::VectorXd m2 = (sq - sum.cwiseAbs2() / double(n)).cwiseMax(0.0);
    const Eigen::VectorXd abs_sum = sq.cwiseSqrt() * std::sqrt(double(n)) * 0.8;
    slot = std::make_unique<LayerData>(
        LayerData{bench::normal<Eigen::MatrixXf>(sh.d_out, d, 13, 1.0 / std::sqrt(double(d))),
                  rcpu::Statistics<float>::from_sums(n, sum, abs_sum, sq, m2, G)});
  }
  return *slot;
}

rcpu::PruneOptions options(const Shape& sh, rcpu::Compensation c) {
  rcpu::PruneOptions o = sh.head_dim > 1 ? rcpu::PruneOptions::heads(sh.head_dim, 0.2) : rcpu::PruneOptions::channels(0.2);
  o.compensation = c;
  o.compensation_options.lambda = 1.0;
  return o;
}

Index kept_columns(const Shape& sh) {
  const Index units = sh.d_in / sh.head_dim;
  return (units - Index(0.2 * double(units))) * sh.head_dim;
}

double must_hold_mib(const Shape& sh, rcpu::Compensation c) {
  const double k = double(kept_columns(sh)), dout = double(sh.d_out), din = double(sh.d_in);
  double bytes = 4 * dout * din + 8 * din * din + 4 * dout * k;  // W, G, output weight
  if (c == rcpu::Compensation::proximal_ridge)
    bytes += 8 * k * k;  // Cholesky factor
  else
    bytes += 3 * 8 * dout * dout + 4 * dout * dout;  // M, U, V; output rotation
  return bytes / 1048576.0;
}

// Bytes of a call's inputs: W (float) and the statistics (Gram and four d_in vectors, double).
double input_mib(const Shape& sh) {
  const double din = double(sh.d_in);
  return (4 * double(sh.d_out) * din + 8 * din * din + 5 * 8 * din) / 1048576.0;
}

// Resets the peak resident set to the current one, after the freed heap went back to the kernel
// (otherwise the call could reuse resident pages freed by earlier benchmarks, unseen). Returns the
// resident set in KiB, or -1 when the peak cannot be reset.
long start_peak_window() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  if (!bench::reset_peak_rss()) return -1;
  return bench::status_kib("VmRSS");
}

// full_rotation: the d_out x d_out route even where k < d_out (what compensate() did before the
// reduced route), for comparison.
void rcpu_prune(benchmark::State& state, const Shape& sh, rcpu::Compensation c, bool full_rotation = false) {
  const LayerData& L = layer(sh);
  rcpu::PruneOptions opt = options(sh, c);
  opt.compensation_options.full_rotation = full_rotation;
  long rise = -1;  // highest rise of the resident set during one call, KiB
  for (auto _ : state) {
    state.PauseTiming();
    const long base = start_peak_window();
    state.ResumeTiming();
    auto pruned = rcpu::prune_layer(L.W, L.stats, opt);
    benchmark::DoNotOptimize(pruned.weight.data());
    state.PauseTiming();
    if (base >= 0) rise = std::max(rise, bench::status_kib("VmHWM") - base);
    if (pruned.report.info != rcpu::Info::success) state.SkipWithError("prune_layer did not succeed");
    state.ResumeTiming();
  }
  if (rise >= 0) {
    const double peak_mib = input_mib(sh) + double(rise) / 1024.0, must = must_hold_mib(sh, c);
    state.counters["peak_MiB"] = peak_mib;
    state.counters["must_MiB"] = must;
    state.counters["peak_ratio"] = peak_mib / must;
  }
}

// The kernels rcpu's compensation calls, each on ready contiguous operands: the lower bound.
struct Kernels {
  Index dout, din, k, nd;
  Eigen::MatrixXd W, Gk, A, M, Mt, V, C, Q, WK, Out, H, S;
  Eigen::VectorXd w, e, tau;
  explicit Kernels(const Shape& sh) : dout(sh.d_out), din(sh.d_in), k(kept_columns(sh)), nd(sh.d_in - k) {
    W = bench::normal<Eigen::MatrixXd>(dout, din, 21, 0.02);
    Gk = bench::normal<Eigen::MatrixXd>(din, k, 22);
    A.resize(dout, k);
    M = bench::normal<Eigen::MatrixXd>(dout, dout, 23);
    WK = W.leftCols(k);
    Out.setZero(dout, k);
    V.resize(dout, dout);
    C.resize(dout, dout);
    Q.resize(dout, dout);
    S.resize(std::max<Index>(1, nd), std::max<Index>(1, nd));
    H = Eigen::MatrixXd::Identity(k, k) * double(k);
    w.resize(dout);
    e.resize(dout);
    tau.resize(dout);
  }
  void common() {  // A = W G[:,K] and the report's W_D^T W_D
    bench::gemm<double>(CblasNoTrans, CblasNoTrans, int(dout), int(k), int(din), W.data(), int(dout), Gk.data(), int(din),
                        A.data(), int(dout));
    if (nd > 0)
      cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, int(nd), int(dout), 1.0, W.data() + dout * k, int(dout), 0.0,
                  S.data(), int(nd));
  }
  void rotation() {
    const int n = int(dout);
    common();
    bench::gemm<double>(CblasNoTrans, CblasTrans, n, n, int(k), A.data(), n, WK.data(), n, M.data(), n);  // M
    // polar_eig: M^T M, tridiagonal reduction, divide and conquer, then three n^3 GEMMs (the
    // back-transformation, M V, U V^T), then Q W_K.
    cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, n, n, 1.0, M.data(), n, 0.0, Mt.data(), n);
    LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', n, Mt.data(), n, w.data(), e.data(), tau.data());
    LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', n, w.data(), e.data(), V.data(), n);
    for (int i = 0; i < 3; ++i)
      bench::gemm<double>(CblasNoTrans, CblasNoTrans, n, n, n, M.data(), n, V.data(), n, (i == 1 ? Q : C).data(), n);
    bench::gemm<double>(CblasNoTrans, CblasNoTrans, n, int(k), n, Q.data(), n, WK.data(), n, Out.data(), n);
  }
  // The reduced route of compensate() when k < d_out (rcpu::ProcrustesProduct): A, W_D^T W_D, the
  // QR of W_K (?geqrf), B = A R_w^T (TRMM), the QR of B, polar_eig's kernels on the k x k R_b (SYRK,
  // ?sytrd, ?stedc, three k^3 GEMMs), P R_w (TRMM) and Q_b [P R_w; 0] (?ormqr, as GEMMs: two per
  // block of reflectors, about 4 d k^2 flops; timed here as one d x k x k GEMM and one k x k x d).
  void rotation_reduced() {
    const int n = int(dout), kk = int(k);
    common();
    Eigen::MatrixXd F = WK, B = A, Rb(k, k), Vk(k, k), Ck(k, k), Pk(k, k), Ak(k, k), X(k, k);
    Eigen::VectorXd wk(k), ek(k), tk(k);
    LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, kk, F.data(), n, tau.data());
    cblas_dtrmm(CblasColMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, n, kk, 1.0, F.data(), n, B.data(), n);
    LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, kk, B.data(), n, tau.data());
    Rb = B.topRows(k).triangularView<Eigen::Upper>();
    cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, kk, kk, 1.0, Rb.data(), kk, 0.0, Ak.data(), kk);
    LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', kk, Ak.data(), kk, wk.data(), ek.data(), tk.data());
    LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', kk, wk.data(), ek.data(), Vk.data(), kk);
    for (int i = 0; i < 3; ++i)
      bench::gemm<double>(CblasNoTrans, CblasNoTrans, kk, kk, kk, Rb.data(), kk, Vk.data(), kk, (i == 1 ? Pk : Ck).data(), kk);
    cblas_dtrmm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, kk, kk, 1.0, F.data(), n, Pk.data(), kk);
    bench::gemm<double>(CblasTrans, CblasNoTrans, kk, kk, n, B.data(), n, Out.data(), n, X.data(), kk);
    bench::gemm<double>(CblasNoTrans, CblasNoTrans, n, kk, kk, B.data(), n, X.data(), kk, Out.data(), n);
  }
  void ridge() {
    common();
    Eigen::MatrixXd Hc = H;
    LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', int(k), Hc.data(), int(k));
    Out = A;
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, int(dout), int(k), 1.0, Hc.data(),
                int(k), Out.data(), int(dout));
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, int(dout), int(k), 1.0, Hc.data(),
                int(k), Out.data(), int(dout));
  }
};

// kind: "rotation" (the route compensate() takes: reduced when k < d_out), "rotation_full" (the full
// d_out x d_out route) or "ridge".
void kernel_bound(benchmark::State& state, const Shape& sh, const std::string& kind) {
  Kernels K(sh);
  K.Mt.resize(sh.d_out, sh.d_out);
  const bool reduced = kind == "rotation" && K.k < K.dout;
  for (auto _ : state) {
    if (kind == "ridge")
      K.ridge();
    else if (reduced)
      K.rotation_reduced();
    else
      K.rotation();
    benchmark::DoNotOptimize(K.Out.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Warm OpenBLAS (its per-thread buffers) so that they are not counted in the first call's peak.
  {
    Eigen::MatrixXd a = Eigen::MatrixXd::Random(256, 256), c(256, 256);
    bench::gemm<double>(CblasNoTrans, CblasNoTrans, 256, 256, 256, a.data(), 256, a.data(), 256, c.data(), 256);
  }
  return bench::run_main(argc, argv, [](bool smoke) {
    static std::vector<Shape> tiny = {{"tiny_o_proj", 32, 32, 8}, {"tiny_down_proj", 24, 64, 1}};
    const std::vector<Shape>& list = smoke ? tiny : shapes();
    using C = rcpu::Compensation;
    for (const Shape& sh : list) {
      const int reps = smoke ? 1 : 3;
      auto add = [&](const std::string& name, auto fn) {
        auto* b = benchmark::RegisterBenchmark(("layer/" + name + "/" + sh.name).c_str(), fn);
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (reps > 1) b->Repetitions(reps);
      };
      add("rcpu_rotation", [sh](benchmark::State& s) { rcpu_prune(s, sh, C::rotation); });
      add("rcpu_rotation_scale", [sh](benchmark::State& s) { rcpu_prune(s, sh, C::rotation_scale); });
      add("rcpu_proximal_ridge", [sh](benchmark::State& s) { rcpu_prune(s, sh, C::proximal_ridge); });
      add("kernels_rotation", [sh](benchmark::State& s) { kernel_bound(s, sh, "rotation"); });
      if (kept_columns(sh) < sh.d_out) {  // o_proj: also the full route and its bound, for comparison
        add("rcpu_rotation_full", [sh](benchmark::State& s) { rcpu_prune(s, sh, C::rotation, true); });
        add("kernels_rotation_full", [sh](benchmark::State& s) { kernel_bound(s, sh, "rotation_full"); });
      }
      add("kernels_proximal_ridge", [sh](benchmark::State& s) { kernel_bound(s, sh, "ridge"); });
    }
  });
}
