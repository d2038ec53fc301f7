// Shared helpers of rcpu's benchmarks: seeded data, the OpenBLAS/LAPACKE baselines' thin wrappers,
// peak-memory probes, and a main() that registers either the full sizes or a smoke size.
#ifndef RCPU_BENCHMARKS_COMMON_HPP
#define RCPU_BENCHMARKS_COMMON_HPP

// rcpu first, before Eigen (rcpu/detail/intrinsics.hpp).
#include <rcpu/config.hpp>
#include <rcpu/kernels.hpp>

#include <benchmark/benchmark.h>
#include <cblas.h>
#include <lapacke.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/QR>

namespace bench {

using Index = Eigen::Index;
template <typename S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
template <typename S>
using RowMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Seeded standard normal matrix (fast: one generator, filled column by column).
template <typename M>
M normal(Index r, Index c, std::uint32_t seed, double sd = 1.0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> n(0.0, sd);
  M m(r, c);
  for (Index j = 0; j < m.cols(); ++j)
    for (Index i = 0; i < m.rows(); ++i) m(i, j) = typename M::Scalar(n(g));
  return m;
}

/// Haar-ish orthogonal matrix (QR of a Gaussian).
inline Eigen::MatrixXd orthogonal(Index d, std::uint32_t seed) {
  const Eigen::MatrixXd g = normal<Eigen::MatrixXd>(d, d, seed);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  return qr.householderQ() * Eigen::MatrixXd::Identity(d, d);
}

// --- memory -----------------------------------------------------------------------------------
/// A field of /proc/self/status in KiB (VmRSS, VmHWM), -1 when unavailable.
inline long status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::stol(line.substr(n + 1));
  return -1;
}
/// Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0). False when not permitted.
inline bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  std::fclose(f);
  return ok;
}

// --- the baselines' kernels ---------------------------------------------------------------------
inline void syrk(CBLAS_TRANSPOSE t, int n, int k, const double* a, int lda, double beta, double* c) {
  cblas_dsyrk(CblasColMajor, CblasLower, t, n, k, 1.0, a, lda, beta, c, n);
}
inline void syrk(CBLAS_TRANSPOSE t, int n, int k, const float* a, int lda, float beta, float* c) {
  cblas_ssyrk(CblasColMajor, CblasLower, t, n, k, 1.0f, a, lda, beta, c, n);
}
template <typename S>
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const S* a, int lda, const S* b, int ldb,
          S* c, int ldc) {
  if constexpr (std::is_same<S, double>::value)
    cblas_dgemm(CblasColMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
  else
    cblas_sgemm(CblasColMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}
/// The reference Procrustes route: ?gesdd (full U and V^T) + one GEMM, Q = U V^T. Workspace from a
/// query, with a margin for the float rounding of the single-precision query.
template <typename S>
void gesdd_procrustes(const Mat<S>& M, Mat<S>& Q) {
  const int n = int(M.rows());
  Mat<S> A = M, U(n, n), VT(n, n);
  Eigen::Matrix<S, Eigen::Dynamic, 1> s(n);
  std::vector<lapack_int> iwork(8 * std::size_t(n));
  S q = 0;
  if constexpr (std::is_same<S, double>::value) {
    LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'A', n, n, A.data(), n, s.data(), U.data(), n, VT.data(), n, &q, -1,
                        iwork.data());
    std::vector<S> work(std::size_t(double(q) * 1.000001) + 64);
    LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'A', n, n, A.data(), n, s.data(), U.data(), n, VT.data(), n, work.data(),
                        lapack_int(work.size()), iwork.data());
  } else {
    LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'A', n, n, A.data(), n, s.data(), U.data(), n, VT.data(), n, &q, -1,
                        iwork.data());
    std::vector<S> work(std::size_t(double(q) * 1.000001) + 64);
    LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'A', n, n, A.data(), n, s.data(), U.data(), n, VT.data(), n, work.data(),
                        lapack_int(work.size()), iwork.data());
  }
  Q.resize(n, n);
  gemm<S>(CblasNoTrans, CblasNoTrans, n, n, n, U.data(), n, VT.data(), n, Q.data(), n);
}

// --- registration ----------------------------------------------------------------------------
/// argv contains --rcpu_smoke: register only tiny sizes (CI). Removed from argv.
inline bool take_smoke_flag(int& argc, char** argv) {
  bool smoke = false;
  int out = 0;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--rcpu_smoke")
      smoke = true;
    else
      argv[out++] = argv[i];
  }
  argc = out;
  return smoke;
}

/// Machine and library facts, as benchmark context (they land in the JSON output).
inline void add_context() {
  benchmark::AddCustomContext("rcpu_backend", rcpu::backend());
  const rcpu::KernelInfo kernels = rcpu::kernel_info();
  benchmark::AddCustomContext("openblas_core", kernels.blas_core.empty() ? "(none)" : kernels.blas_core);
  benchmark::AddCustomContext("rcpu_products", rcpu::to_string(kernels.products));
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  benchmark::AddCustomContext("openblas_threads", std::to_string(openblas_get_num_threads()));
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", ct ? ct : "(unset)");
  benchmark::AddCustomContext("eigen_version", std::to_string(EIGEN_WORLD_VERSION) + "." +
                                                   std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                                   std::to_string(EIGEN_MINOR_VERSION));
#ifdef _OPENMP
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
#else
  benchmark::AddCustomContext("eigen_threads", "1 (no OpenMP)");
#endif
}

/// main() of every benchmark: parses --rcpu_smoke, registers, runs.
inline int run_main(int argc, char** argv, const std::function<void(bool smoke)>& register_all) {
  const bool smoke = take_smoke_flag(argc, argv);
  register_all(smoke);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  add_context();
  if (const std::string notice = rcpu::kernel_notice(); !notice.empty()) std::fprintf(stderr, "%s\n", notice.c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench

#endif  // RCPU_BENCHMARKS_COMMON_HPP
