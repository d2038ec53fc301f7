// Benchmarks of rcpu's CUDA backend (Google Benchmark), each against its baseline in the same binary:
//   gemm/...        cuBLAS SGEMM / DGEMM of the Gram's shape (d x N times N x d): the peak the Gram is
//                   measured against
//   gram/...        DeviceStatistics::update of one N-token block (moments + Gram), d = 4096 and 11008,
//                   f32 / bf16 inputs, float / double Gram; counters: GEMM-equivalent TFLOP/s (2 d^2 N / t)
//                   and its fraction of the same-shape SGEMM rate measured in this binary
//   procrustes/...  the rotation of a d x d matrix (d = 4096, 8192) with each cuSOLVER route; counters:
//                   orthogonality ||Q^T Q - I||_F and |<Q, M> - trace| / trace
//   llama7b/...     one LLaMA-7B layer from statistics: o_proj 4096x4096 (32 heads of 128, 20% pruned)
//                   and down_proj 4096x11008 (20% of the channels), rotation compensation, report
// All times are GPU wall time (cudaEvent) per iteration. Without a device the binary prints
// "SKIPPED: no CUDA device" and exits 0.
//
// Sizes can be cut with --benchmark_filter; RCPU_BENCH_QUICK=1 registers only the sizes the issue asks
// for (used by scripts/gpu_check.sh).
#include <rcpu/cuda.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using rcpu::Index;
namespace rc = rcpu::cuda;

rc::Context& ctx() {
  static rc::Context c(0);
  return c;
}

// Fast reproducible pseudo-normal numbers (Irwin-Hall sum of four uniforms), enough for timings.
class FastRng {
 public:
  explicit FastRng(std::uint64_t seed) : m_s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  double uniform() {
    std::uint64_t z = (m_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0);
  }
  double normal() { return (uniform() + uniform() + uniform() + uniform() - 2.0) * 1.7320508075688772; }

 private:
  std::uint64_t m_s;
};

template <typename T>
rc::DeviceMatrix<T> random_matrix(Index rows, Index cols, std::uint64_t seed, double sd = 1.0) {
  FastRng rng(seed);
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> h(rows, cols);
  T* p = h.data();
  for (Index i = 0; i < rows * cols; ++i) p[i] = T(sd * rng.normal());
  return rc::DeviceMatrix<T>::from_host(ctx(), h);
}

// Times `fn` on the context's stream with CUDA events (plus whatever host synchronisation it does).
template <typename Fn>
double time_gpu(Fn&& fn) {
  cudaEvent_t start = nullptr, stop = nullptr;
  RCPU_CUDA_CHECK(cudaEventCreate(&start));
  RCPU_CUDA_CHECK(cudaEventCreate(&stop));
  RCPU_CUDA_CHECK(cudaEventRecord(start, ctx().stream()));
  fn();
  RCPU_CUDA_CHECK(cudaEventRecord(stop, ctx().stream()));
  RCPU_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  RCPU_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  RCPU_CUDA_CHECK(cudaEventDestroy(start));
  RCPU_CUDA_CHECK(cudaEventDestroy(stop));
  return double(ms) * 1e-3;
}

// ------------------------------------------------------------------------------------------------
// GEMM of the Gram's shape: C (d x d) += A (d x N) B (N x d), the baseline of the Gram benchmarks.

template <typename T>
double gemm_seconds(Index d, Index n, int reps) {
  const rc::DeviceMatrix<T> X = random_matrix<T>(d, n, 7);
  rc::DeviceMatrix<T> C(ctx(), d, d);
  C.set_zero(ctx());
  auto run = [&] {
    rc::detail::gemm(ctx(), CUBLAS_OP_N, CUBLAS_OP_T, d, d, n, T(1), X.data(), d, X.data(), d, T(1), C.data(), d);
  };
  run();  // warm-up (library initialisation, kernel selection)
  ctx().synchronize();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) best = std::min(best, time_gpu(run));
  return best;
}

// The same-shape SGEMM rate (TFLOP/s), measured once per shape in this process.
double sgemm_tflops(Index d, Index n) {
  static std::map<std::pair<Index, Index>, double> cache;
  const auto key = std::make_pair(d, n);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const double t = gemm_seconds<float>(d, n, 5);
  return cache[key] = 2.0 * double(d) * double(d) * double(n) / t * 1e-12;
}

template <typename T>
void bm_gemm(benchmark::State& state, Index d, Index n) {
  const rc::DeviceMatrix<T> X = random_matrix<T>(d, n, 7);
  rc::DeviceMatrix<T> C(ctx(), d, d);
  C.set_zero(ctx());
  auto run = [&] {
    rc::detail::gemm(ctx(), CUBLAS_OP_N, CUBLAS_OP_T, d, d, n, T(1), X.data(), d, X.data(), d, T(1), C.data(), d);
  };
  run();
  ctx().synchronize();
  double total = 0;
  for (auto _ : state) {
    const double t = time_gpu(run);
    total += t;
    state.SetIterationTime(t);
  }
  // Rates from the GPU times measured here (not from the library's rate counters, which use CPU time).
  const double mean = total / double(state.iterations());
  state.counters["TFLOPS"] = 2.0 * double(d) * double(d) * double(n) / mean * 1e-12;
}

// ------------------------------------------------------------------------------------------------
// Gram accumulation: one update of an N-token row-major block (as a PyTorch activation).

template <typename Acc>
void bm_gram(benchmark::State& state, Index d, Index n, rc::DataType type, rc::GramKernel kernel, bool check_finite) {
  // The block, in the requested type: converted on the device from a float block.
  const rc::DeviceMatrix<float> Xf = random_matrix<float>(d, n, 11);  // d x N column-major = N x d row-major
  rc::DeviceBuffer<unsigned char> bytes;
  const void* data = Xf.data();
  if (type != rc::DataType::f32) {
    const auto guard = ctx().activate();
    bytes = rc::DeviceBuffer<unsigned char>(std::size_t(d) * std::size_t(n) * rc::size_of(type));
    if (type == rc::DataType::f64) {
      RCPU_CUDA_CHECK(rc::detail::kernels::convert(Xf.data(), rc::DataType::f32, d, n, d, bytes.data(), rc::DataType::f64, d,
                                                   ctx().stream()));
    } else {  // half / bfloat16, converted on the host (truncating half: fine for timing)
      std::vector<std::uint16_t> h(std::size_t(d) * std::size_t(n));
      const Eigen::MatrixXf hf = Xf.to_host(ctx());
      for (std::size_t i = 0; i < h.size(); ++i) {
        float f = hf.data()[i];
        std::uint32_t u;
        std::memcpy(&u, &f, 4);
        if (type == rc::DataType::bf16) {
          h[i] = std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);  // round to nearest even
        } else {  // IEEE half, values are small normals: no overflow, flush tiny ones to zero
          const std::uint32_t sign = (u >> 16) & 0x8000u;
          const int exp = int((u >> 23) & 0xFF) - 127 + 15;
          const std::uint32_t mant = u & 0x7FFFFFu;
          h[i] = exp <= 0 ? std::uint16_t(sign) : std::uint16_t(sign | (std::uint32_t(exp) << 10) | (mant >> 13));
        }
      }
      rc::detail::upload_bytes(ctx(), bytes.data(), h.data(), h.size() * 2);
    }
    ctx().synchronize();
    data = bytes.data();
  }
  rc::DeviceStatisticsOptions opt;
  opt.gram_kernel = kernel;
  opt.check_finite = check_finite;
  rc::DeviceStatistics<Acc> st(ctx(), d, rcpu::GramMode::full, opt);
  const rc::TokenBlock block = rc::TokenBlock::row_major(data, type, n, d);
  st.update(block);  // warm-up
  ctx().synchronize();
  double total = 0;
  for (auto _ : state) {
    const double t = time_gpu([&] { st.update(block); });
    total += t;
    state.SetIterationTime(t);
  }
  const double mean = total / double(state.iterations());
  const double flop = 2.0 * double(d) * double(d) * double(n);  // GEMM-equivalent: what X^T X costs as a GEMM
  const double rate = flop / mean * 1e-12;
  const double peak = sgemm_tflops(d, n);  // same-shape SGEMM, measured in this process
  state.counters["TFLOPS_gemm_equiv"] = rate;
  state.counters["sgemm_TFLOPS"] = peak;
  state.counters["fraction_of_sgemm"] = rate / peak;
  state.counters["Mtokens_per_s"] = double(n) / mean * 1e-6;
}

// ------------------------------------------------------------------------------------------------
// Procrustes: rotation of a d x d matrix of rank r (r = d: full rank; r < d: o_proj-like).

template <typename Scalar>
void bm_procrustes(benchmark::State& state, Index d, Index r, rc::ProcrustesSolver solver, bool in_double,
                   bool warm_up) {
  rc::DeviceMatrix<Scalar> M(ctx(), d, d);
  {
    const rc::DeviceMatrix<Scalar> B = random_matrix<Scalar>(d, r, 21), C = random_matrix<Scalar>(d, r, 22);
    const auto guard = ctx().activate();
    rc::detail::gemm(ctx(), CUBLAS_OP_N, CUBLAS_OP_T, d, d, r, Scalar(1), B.data(), d, C.data(), d, Scalar(0), M.data(), d);
  }
  rc::SolverOptions so;
  so.solver = solver;
  so.solve_in_double = in_double;
  rc::Procrustes<Scalar> p(ctx());
  if (warm_up) p.compute(M.view(), {}, so);
  for (auto _ : state) state.SetIterationTime(time_gpu([&] { p.compute(M.view(), {}, so); }));
  if (p.info() != rcpu::Info::success) {
    state.SkipWithError("the solve did not converge");
    return;
  }
  // Accuracy of the last solve: orthogonality and consistency of Q with the singular values.
  const auto guard = ctx().activate();
  const rc::DeviceMatrix<Scalar>& Q = p.rotation();
  rc::DeviceMatrix<Scalar> E(ctx(), d, d);
  rc::detail::gemm(ctx(), CUBLAS_OP_T, CUBLAS_OP_N, d, d, d, Scalar(1), Q.data(), d, Q.data(), d, Scalar(0), E.data(), d);
  const Eigen::MatrixXd Eh = E.to_host(ctx()).template cast<double>();
  const double orth = (Eh - Eigen::MatrixXd::Identity(d, d)).norm();
  const double qm = rc::detail::frobenius_dot<Scalar>(ctx(), Q.view(), M.view());
  state.counters["orth_err"] = orth;
  state.counters["trace_rel_err"] = std::abs(qm - double(p.trace())) / double(p.trace());
  state.counters["rank"] = double(p.rank());
}

// ------------------------------------------------------------------------------------------------
// One LLaMA-7B decoder layer from statistics: o_proj (heads) then down_proj (channels).

constexpr Index hidden = 4096, inter = 11008, head_dim = 128, calib_tokens = 16384, block_tokens = 2048;

// Statistics of LLM-like activations: per-channel scales spread over two orders of magnitude, a few
// outlier channels, non-zero means. Generated in blocks on the host, accumulated on the device.
template <typename Acc>
std::shared_ptr<rc::DeviceStatistics<Acc>> llm_statistics(Index d, std::uint64_t seed) {
  auto st = std::make_shared<rc::DeviceStatistics<Acc>>(ctx(), d);
  FastRng rng(seed);
  Eigen::VectorXf scale(d), mean(d);
  for (Index j = 0; j < d; ++j) {
    scale(j) = float(std::exp(1.2 * rng.normal()) * (j % 512 == 7 ? 20.0 : 1.0));
    mean(j) = float(0.2 * rng.normal());
  }
  Eigen::MatrixXf block(d, block_tokens);  // row-major tokens x channels, as the activations come
  for (Index b = 0; b < calib_tokens / block_tokens; ++b) {
    const Index r = 16;  // a low-rank part shared by the tokens of a block
    Eigen::MatrixXf basis(d, r), coef(r, block_tokens);
    for (Index i = 0; i < basis.size(); ++i) basis.data()[i] = float(rng.normal());
    for (Index i = 0; i < coef.size(); ++i) coef.data()[i] = float(rng.normal() / 8.0);
    block.noalias() = basis * coef;
    for (Index t = 0; t < block_tokens; ++t)
      for (Index j = 0; j < d; ++j) block(j, t) = scale(j) * (block(j, t) + 0.5f * float(rng.normal()) + mean(j));
    const rc::DeviceMatrix<float> dev = rc::DeviceMatrix<float>::from_host(ctx(), block);
    st->update(rc::TokenBlock::row_major(dev.data(), rc::DataType::f32, block_tokens, d));
    ctx().synchronize();
  }
  return st;
}

template <typename Acc>
const rc::DeviceStatistics<Acc>& cached_statistics(Index d) {
  static std::map<Index, std::shared_ptr<rc::DeviceStatistics<Acc>>> cache;
  auto& p = cache[d];
  if (!p) p = llm_statistics<Acc>(d, std::uint64_t(d));
  return *p;
}

enum class Part { o_proj, down_proj, layer };

template <typename Scalar, typename Acc>
void bm_llama(benchmark::State& state, Part part, rc::ProcrustesSolver solver) {
  const rc::DeviceStatistics<Acc>& st_o = cached_statistics<Acc>(hidden);
  const rc::DeviceStatistics<Acc>& st_d = cached_statistics<Acc>(inter);
  const rc::DeviceMatrix<Scalar> Wo = random_matrix<Scalar>(hidden, hidden, 31, 1.0 / 64.0);
  const rc::DeviceMatrix<Scalar> Wd = random_matrix<Scalar>(hidden, inter, 32, 1.0 / 105.0);
  rcpu::PruneOptions oo = rcpu::PruneOptions::heads(head_dim, 0.2);
  rcpu::PruneOptions od = rcpu::PruneOptions::channels(0.2);
  oo.compensation = od.compensation = rcpu::Compensation::rotation;
  rc::SolverOptions so;
  so.solver = solver;
  double err_o = 0, err_d = 0;
  auto run = [&] {
    if (part != Part::down_proj) err_o = rc::prune_layer(ctx(), Wo, st_o, oo, so).report.after.relative_error;
    if (part != Part::o_proj) err_d = rc::prune_layer(ctx(), Wd, st_d, od, so).report.after.relative_error;
  };
  run();  // warm-up
  for (auto _ : state) state.SetIterationTime(time_gpu(run));
  if (part != Part::down_proj) state.counters["o_proj_rel_err"] = err_o;
  if (part != Part::o_proj) state.counters["down_proj_rel_err"] = err_d;
}

std::string solver_name(rc::ProcrustesSolver s) { return rc::to_string(s); }

void register_all(bool quick) {
  const std::vector<Index> gram_dims = {hidden, inter};
  const Index gram_tokens = 8192;
  for (Index d : gram_dims) {
    const std::string shape = "/d:" + std::to_string(d) + "/N:" + std::to_string(gram_tokens);
    benchmark::RegisterBenchmark(("gemm/sgemm" + shape).c_str(),
                                 [=](benchmark::State& s) { bm_gemm<float>(s, d, gram_tokens); })
        ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
    if (!quick)
      benchmark::RegisterBenchmark(("gemm/dgemm" + shape).c_str(),
                                   [=](benchmark::State& s) { bm_gemm<double>(s, d, gram_tokens); })
          ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
    struct G {
      const char* name;
      bool dbl;
      rc::DataType type;
      rc::GramKernel kernel;
      bool check;
    };
    const std::vector<G> variants = {
        {"gram/float/f32/syrk", false, rc::DataType::f32, rc::GramKernel::syrk, true},
        {"gram/float/f32/gemm", false, rc::DataType::f32, rc::GramKernel::gemm, true},
        {"gram/float/f32/syrk/nocheck", false, rc::DataType::f32, rc::GramKernel::syrk, false},
        {"gram/float/bf16/auto", false, rc::DataType::bf16, rc::GramKernel::automatic, true},
        {"gram/float/f16/auto", false, rc::DataType::f16, rc::GramKernel::automatic, true},
        {"gram/double/f32/syrk", true, rc::DataType::f32, rc::GramKernel::syrk, true},
        {"gram/double/bf16/syrk", true, rc::DataType::bf16, rc::GramKernel::syrk, true},
    };
    for (const G& g : variants) {
      if (quick && (g.type == rc::DataType::f16 || !g.check)) continue;
      auto* b = g.dbl ? benchmark::RegisterBenchmark((std::string(g.name) + shape).c_str(), [=](benchmark::State& s) {
        bm_gram<double>(s, d, gram_tokens, g.type, g.kernel, g.check);
      })
                      : benchmark::RegisterBenchmark((std::string(g.name) + shape).c_str(), [=](benchmark::State& s) {
                          bm_gram<float>(s, d, gram_tokens, g.type, g.kernel, g.check);
                        });
      b->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(g.dbl ? 3 : 10);
    }
  }

  // Fast routes first (both sizes), then the slow ones: a time limit then cuts only the slow ones.
  for (rc::ProcrustesSolver s : {rc::ProcrustesSolver::syevd, rc::ProcrustesSolver::gesvdp, rc::ProcrustesSolver::gesvd,
                                 rc::ProcrustesSolver::gesvdj}) {
    for (Index d : {Index(4096), Index(8192)}) {
      // QR-iteration and Jacobi SVDs of 8192 x 8192 take tens of seconds: 4096 only.
      const bool slow = s == rc::ProcrustesSolver::gesvd || s == rc::ProcrustesSolver::gesvdj;
      if (d == 8192 && slow) continue;
      for (Index r : {d, d * 13 / 16}) {  // full rank; o_proj-like (26 of 32 heads kept)
        if (quick && r != d && d == 8192) continue;
        for (bool in_double : {true, false}) {
          if (s == rc::ProcrustesSolver::syevd && !in_double) continue;  // always double
          if (quick && slow && (!in_double || r != d)) continue;
          const std::string name = "procrustes/float/" + solver_name(s) + (in_double ? "/double" : "/single") +
                                   "/d:" + std::to_string(d) + "/rank:" + std::to_string(r);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
            bm_procrustes<float>(st, d, r, s, in_double, !slow);
          })->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(slow || d == 8192 ? 1 : 3);
        }
      }
      if (!quick || (d == 4096 && !slow)) {
        const std::string name = "procrustes/double/" + solver_name(s) + "/double/d:" + std::to_string(d) +
                                 "/rank:" + std::to_string(d);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
          bm_procrustes<double>(st, d, d, s, true, !slow);
        })->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(slow || d == 8192 ? 1 : 3);
      }
    }
  }

  const std::vector<std::pair<const char*, Part>> parts = {
      {"layer", Part::layer}, {"o_proj", Part::o_proj}, {"down_proj", Part::down_proj}};
  for (const auto& p : parts) {
    const Part part = p.second;
    benchmark::RegisterBenchmark((std::string("llama7b/float/") + p.first + "/stats:float").c_str(),
                                 [=](benchmark::State& s) { bm_llama<float, float>(s, part, rc::ProcrustesSolver::automatic); })
        ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
    if (part != Part::layer && quick) continue;
    benchmark::RegisterBenchmark((std::string("llama7b/double/") + p.first + "/stats:double").c_str(),
                                 [=](benchmark::State& s) { bm_llama<double, double>(s, part, rc::ProcrustesSolver::automatic); })
        ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
  }
  benchmark::RegisterBenchmark("llama7b/float/layer/stats:float/gesvdp", [](benchmark::State& s) {
    bm_llama<float, float>(s, Part::layer, rc::ProcrustesSolver::gesvdp);
  })->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (rc::device_count() == 0) {
    std::cout << "SKIPPED: no CUDA device (" << rc::device_status() << "); no GPU benchmark was run\n";
    return 0;
  }
  std::cout << "rcpu CUDA benchmarks on " << ctx().device_name() << " (" << ctx().multiprocessors()
            << " multiprocessors)\n";
  const char* quick = std::getenv("RCPU_BENCH_QUICK");
  register_all(quick != nullptr && std::string(quick) == "1");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
