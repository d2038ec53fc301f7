// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_STATISTICS_HPP
#define RCPU_CUDA_STATISTICS_HPP

/// \file cuda/statistics.hpp
/// Streamed statistics of a linear layer's input, accumulated on the GPU from token blocks that are
/// already in device memory (float, double, half or bfloat16). The same quantities as
/// rcpu::Statistics (statistics.hpp): n, sum x, sum |x|, sum x^2, m2 (Chan-merged sums of squared
/// deviations) and the Gram G = sum x x^T, kept in AccScalar (float or double). Mergeable, and
/// downloadable into an rcpu::Statistics for the CPU.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "../statistics.hpp"
#include "config.hpp"
#include "detail/checks.hpp"
#include "context.hpp"
#include "detail/linalg.hpp"
#include "error.hpp"
#include "kernels.hpp"
#include "memory.hpp"

namespace rcpu {
namespace cuda {

/// Which cuBLAS routine adds a block's Gram X^T X.
enum class GramKernel {
  automatic,  ///< syrk for float/double blocks (half the flops), gemm for half/bfloat16 into float (tensor cores)
  syrk,       ///< cublas<t>syrk on the lower triangle (half/bfloat16 blocks are converted to AccScalar first)
  gemm        ///< cublas<t>gemm / cublasGemmEx on the full matrix (twice the flops, often the fastest kernel)
};

inline const char* to_string(GramKernel k) {
  switch (k) {
    case GramKernel::automatic: return "automatic";
    case GramKernel::syrk: return "syrk";
    case GramKernel::gemm: return "gemm";
  }
  return "unknown";
}

struct DeviceStatisticsOptions {
  GramKernel gram_kernel = GramKernel::automatic;
  /// Check every block for NaN/Inf before it is added (one small read-back per update, through the
  /// per-channel sums of |x|), so that a bad block throws rcpu::invalid_argument and leaves the
  /// statistics unchanged, as on the CPU. Off: no synchronisation inside update().
  bool check_finite = true;
};

/// Per-channel moments read back to the host, in double.
struct Moments {
  Index tokens = 0;
  Eigen::VectorXd sum, abs_sum, sq_sum, mean, m2;
};

/// Accumulator of the input statistics of one linear layer, on the device.
///
/// A token block is tokens x channels (a TokenBlock: row-major, as a PyTorch activation, or
/// column-major, as an Eigen matrix with one row per token). Per block, a kernel computes the
/// per-channel sums in double (two passes: the block's m2 is taken around the block's mean, then
/// merged with Chan's rule), and cuBLAS adds X^T X to the Gram (lower triangle with SYRK; GEMM for
/// half/bfloat16 into a float Gram). The upper triangle is filled on first read, as on the CPU.
///
/// \tparam AccScalar  float or double: what the Gram and the sums are kept in. (The CPU keeps double
///                    by default; on the GPU a float Gram is several times faster, a double Gram is as
///                    exact as the CPU's.)
template <typename AccScalar>
class DeviceStatistics {
  static_assert(std::is_same<AccScalar, float>::value || std::is_same<AccScalar, double>::value,
                "rcpu::cuda::DeviceStatistics accumulates in float or double");

 public:
  using Accumulator = AccScalar;
  using Options = DeviceStatisticsOptions;

  /// \param ctx       the device and stream to work on (must outlive this object)
  /// \param channels  number of input channels d_in (>= 0)
  /// \param mode      GramMode::full (default) or GramMode::diagonal
  DeviceStatistics(const Context& ctx, Index channels, GramMode mode = GramMode::full, const Options& options = {})
      : m_ctx(&ctx), m_mode(mode), m_options(options) {
    detail::require(channels >= 0, "cuda::DeviceStatistics: channels = " + std::to_string(channels) +
                                             " must be >= 0");
    m_d = channels;
    const ScopedDevice on(ctx.device());
    m_sum = DeviceBuffer<AccScalar>(std::size_t(m_d));
    m_abs = DeviceBuffer<AccScalar>(std::size_t(m_d));
    m_sq = DeviceBuffer<AccScalar>(std::size_t(m_d));
    m_mean = DeviceBuffer<AccScalar>(std::size_t(m_d));
    m_m2 = DeviceBuffer<AccScalar>(std::size_t(m_d));
    if (m_mode == GramMode::full) m_gram = DeviceMatrix<AccScalar>(m_d, m_d);
    m_block = DeviceBuffer<double>(5 * std::size_t(m_d));
    reset();
  }

  DeviceStatistics(DeviceStatistics&&) noexcept = default;
  DeviceStatistics& operator=(DeviceStatistics&&) noexcept = default;

  /// Forgets all tokens, keeping the channel count and the Gram mode.
  void reset() {
    const ScopedDevice on(m_ctx->device());
    for (DeviceBuffer<AccScalar>* b : {&m_sum, &m_abs, &m_sq, &m_mean, &m_m2})
      if (b->size()) RCPU_CUDA_CHECK(cudaMemsetAsync(b->data(), 0, b->size() * sizeof(AccScalar), m_ctx->stream()));
    m_gram.set_zero(*m_ctx);
    m_n = 0;
    m_gram_symmetric = true;
  }

  /// Adds a block of tokens.
  /// \throws rcpu::invalid_argument on a wrong channel count, a bad leading dimension or pointer, or
  ///         (with check_finite) a NaN/Inf entry; the statistics are then unchanged.
  /// \throws rcpu::cuda::Error if a CUDA call fails.
  DeviceStatistics& update(const TokenBlock& block) {
    const std::string what = "cuda::DeviceStatistics::update: block (" + detail::shape(block.tokens, block.channels) +
                             ", " + to_string(block.type) + ", " + to_string(block.order) + ")";
    detail::require(block.channels == m_d, what + " has " + std::to_string(block.channels) +
                                                     " channels but the statistics have " + std::to_string(m_d) +
                                                     " (expected Nx" + std::to_string(m_d) + ", rows = tokens)");
    detail::require(block.tokens >= 0, what + ": negative token count");
    if (block.tokens == 0) return *this;
    if (m_d == 0) {
      m_n += block.tokens;
      return *this;
    }
    const bool row = block.order == StorageOrder::row_major;
    const Index min_ld = row ? block.channels : block.tokens;
    detail::require(block.ld >= min_ld, what + ": ld = " + std::to_string(block.ld) + " < " +
                                                  (row ? "channels" : "tokens") + " = " + std::to_string(min_ld));
    detail::require(block.data != nullptr, what + ": null data pointer");

    const ScopedDevice on(m_ctx->device());
    const cudaStream_t s = m_ctx->stream();
    double* b_sum = m_block.data();
    double* b_abs = b_sum + m_d;
    double* b_sq = b_abs + m_d;
    double* b_mean = b_sq + m_d;
    double* b_m2 = b_mean + m_d;
    m_scratch.reserve(detail::kernels::moments_scratch(block.tokens, m_d, block.order));
    RCPU_CUDA_LAUNCH(detail::kernels::block_moments(block.data, block.type, block.order, block.tokens, m_d, block.ld,
                                                    m_scratch.data(), b_sum, b_abs, b_sq, b_mean, b_m2, s));
    if (m_options.check_finite) {
      const Eigen::VectorXd a = detail::download_vector(*m_ctx, b_abs, m_d);
      detail::require(a.allFinite(), what + " has a NaN or Inf entry (in channel " +
                                               std::to_string(first_nonfinite(a)) + ")");
    }
    if (m_mode == GramMode::full) add_gram(block);
    RCPU_CUDA_LAUNCH(detail::kernels::merge_moments(m_d, double(m_n), m_sum.data(), m_abs.data(), m_sq.data(),
                                                    m_mean.data(), m_m2.data(), double(block.tokens), b_sum, b_abs,
                                                    b_sq, b_mean, b_m2, s));
    m_n += block.tokens;
    return *this;
  }

  /// Adds a device matrix with one row per token (as rcpu::Statistics::update on the CPU).
  template <typename T>
  DeviceStatistics& update(MatrixView<const T> tokens_by_channels) {
    detail::check_view(tokens_by_channels, "cuda::DeviceStatistics::update: block");
    return update(TokenBlock::from<T>(tokens_by_channels));
  }
  template <typename T>
  DeviceStatistics& update(const DeviceMatrix<T>& tokens_by_channels) {
    return update<T>(tokens_by_channels.view());
  }

  /// Adds the statistics of a disjoint token shard (sums add; mean and m2 combine with Chan's rule).
  /// \throws rcpu::invalid_argument on a different channel count, Gram mode or device.
  DeviceStatistics& merge(const DeviceStatistics& other) {
    detail::require(other.m_d == m_d, "cuda::DeviceStatistics::merge: other has " + std::to_string(other.m_d) +
                                                " channels, this has " + std::to_string(m_d));
    detail::require(other.m_mode == m_mode, "cuda::DeviceStatistics::merge: the two statistics have different Gram modes");
    detail::require(other.m_ctx->device() == m_ctx->device(),
                          "cuda::DeviceStatistics::merge: other lives on device " + std::to_string(other.m_ctx->device()) +
                              ", this on device " + std::to_string(m_ctx->device()));
    if (other.m_n == 0 || &other == this) {
      if (&other == this && m_n > 0) merge_self();
      return *this;
    }
    if (other.m_ctx != m_ctx) other.m_ctx->synchronize();
    const ScopedDevice on(m_ctx->device());
    RCPU_CUDA_LAUNCH(detail::kernels::merge_moments(m_d, double(m_n), m_sum.data(), m_abs.data(), m_sq.data(),
                                                    m_mean.data(), m_m2.data(), double(other.m_n), other.m_sum.data(),
                                                    other.m_abs.data(), other.m_sq.data(), other.m_mean.data(),
                                                    other.m_m2.data(), m_ctx->stream()));
    if (m_mode == GramMode::full)  // both lower triangles are valid; the upper one is refreshed on read
      detail::geam(*m_ctx, CUBLAS_OP_N, CUBLAS_OP_N, m_d, m_d, AccScalar(1), m_gram.data(), m_gram.ld(), AccScalar(1),
                   other.m_gram.data(), other.m_gram.ld(), m_gram.data(), m_gram.ld());
    m_n += other.m_n;
    m_gram_symmetric = false;
    return *this;
  }

  /// The same statistics on the host, as an rcpu::Statistics<Scalar, AccScalar> (synchronises).
  template <typename Scalar = float>
  rcpu::Statistics<Scalar, AccScalar> download() const {
    using Vec = Eigen::Matrix<AccScalar, Eigen::Dynamic, 1>;
    using Mat = Eigen::Matrix<AccScalar, Eigen::Dynamic, Eigen::Dynamic>;
    const ScopedDevice on(m_ctx->device());
    auto fetch = [&](const DeviceBuffer<AccScalar>& b) {
      Vec v(m_d);
      detail::download_bytes(*m_ctx, v.data(), b.data(), std::size_t(m_d) * sizeof(AccScalar));
      return v;
    };
    Mat G;
    if (m_mode == GramMode::full) {
      symmetrize();
      G = m_gram.to_host(*m_ctx);
    }
    return rcpu::Statistics<Scalar, AccScalar>::from_sums(m_n, fetch(m_sum), fetch(m_abs), fetch(m_sq), fetch(m_m2), G);
  }

  /// Uploads CPU statistics (e.g. to merge shards computed elsewhere).
  template <typename S, typename A>
  static DeviceStatistics from_host(const Context& ctx, const rcpu::Statistics<S, A>& cpu, const Options& options = {}) {
    DeviceStatistics d(ctx, cpu.channels(), cpu.gram_mode(), options);
    if (cpu.tokens() == 0) return d;
    const ScopedDevice on(ctx.device());
    auto put = [&](DeviceBuffer<AccScalar>& b, const auto& v) {
      const Eigen::Matrix<AccScalar, Eigen::Dynamic, 1> h = v.template cast<AccScalar>();
      detail::upload_bytes(ctx, b.data(), h.data(), std::size_t(h.size()) * sizeof(AccScalar));
    };
    put(d.m_sum, cpu.sum());
    put(d.m_abs, cpu.abs_sum());
    put(d.m_sq, cpu.sq_sum());
    put(d.m_m2, cpu.m2());
    put(d.m_mean, cpu.mean());
    if (cpu.has_gram()) d.m_gram = DeviceMatrix<AccScalar>::from_host(ctx, cpu.gram());
    d.m_n = cpu.tokens();
    d.m_gram_symmetric = true;
    ctx.synchronize();
    return d;
  }

  /// Per-channel moments in double on the host (synchronises).
  Moments download_moments() const {
    const ScopedDevice on(m_ctx->device());
    Moments m;
    m.tokens = m_n;
    m.sum = detail::download_vector(*m_ctx, m_sum.data(), m_d);
    m.abs_sum = detail::download_vector(*m_ctx, m_abs.data(), m_d);
    m.sq_sum = detail::download_vector(*m_ctx, m_sq.data(), m_d);
    m.mean = detail::download_vector(*m_ctx, m_mean.data(), m_d);
    m.m2 = detail::download_vector(*m_ctx, m_m2.data(), m_d);
    return m;
  }

  Index channels() const { return m_d; }
  Index tokens() const { return m_n; }
  GramMode gram_mode() const { return m_mode; }
  bool has_gram() const { return m_mode == GramMode::full; }
  const Options& options() const { return m_options; }
  const Context& context() const { return *m_ctx; }

  /// Device views (d x 1) of the raw sums, the Chan-merged mean and m2.
  MatrixView<const AccScalar> sum() const { return vec(m_sum); }
  MatrixView<const AccScalar> abs_sum() const { return vec(m_abs); }
  MatrixView<const AccScalar> sq_sum() const { return vec(m_sq); }
  MatrixView<const AccScalar> mean() const { return vec(m_mean); }
  MatrixView<const AccScalar> m2() const { return vec(m_m2); }

  /// The symmetric Gram on the device (d x d). Fills the upper triangle first if needed.
  /// \throws rcpu::invalid_argument in GramMode::diagonal or with no tokens.
  MatrixView<const AccScalar> gram() const {
    detail::require(m_n > 0, "cuda::DeviceStatistics::gram: the statistics hold no tokens (channels = " +
                                       std::to_string(m_d) + ")");
    detail::require(m_mode == GramMode::full,
                          "cuda::DeviceStatistics::gram: the Gram was not accumulated (GramMode::diagonal)");
    const ScopedDevice on(m_ctx->device());
    symmetrize();
    return m_gram.view();
  }

 private:
  static Index first_nonfinite(const Eigen::VectorXd& a) {
    for (Index j = 0; j < a.size(); ++j)
      if (!std::isfinite(a(j))) return j;
    return -1;
  }

  MatrixView<const AccScalar> vec(const DeviceBuffer<AccScalar>& b) const {
    return MatrixView<const AccScalar>(b.data(), m_d, 1, std::max<Index>(m_d, 1));
  }

  // G += X^T X for the block (tokens x channels). As a column-major matrix S over the block's memory,
  // a row-major block is S = X^T (channels x tokens, G += S S^T) and a column-major one is S = X
  // (tokens x channels, G += S^T S).
  void add_gram(const TokenBlock& block) {
    const bool row = block.order == StorageOrder::row_major;
    const cublasOperation_t trans = row ? CUBLAS_OP_N : CUBLAS_OP_T;  // op(S) is channels x tokens
    const Index s_rows = row ? m_d : block.tokens;
    const Index s_cols = row ? block.tokens : m_d;
    const bool half = block.type == DataType::f16 || block.type == DataType::bf16;
    GramKernel kernel = m_options.gram_kernel;
    if (kernel == GramKernel::automatic)
      kernel = half && std::is_same<AccScalar, float>::value ? GramKernel::gemm : GramKernel::syrk;

    if (kernel == GramKernel::gemm && std::is_same<AccScalar, float>::value && block.type != DataType::f64) {
      // cublasGemmEx: f32, f16 or bf16 inputs, f32 output, f32 compute (tensor cores for f16/bf16).
      const float one = 1.0f;
      const cudaDataType t = cuda_data_type(block.type);
      RCPU_CUDA_CHECK(cublasGemmEx_64(m_ctx->cublas(), row ? CUBLAS_OP_N : CUBLAS_OP_T, row ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      m_d, m_d, block.tokens, &one, block.data, t, block.ld, block.data, t, block.ld,
                                      &one, m_gram.data(), CUDA_R_32F, m_gram.ld(), CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
      m_gram_symmetric = false;
      return;
    }
    // Same-type blocks are read in place; others are converted to AccScalar first.
    const AccScalar* S = nullptr;
    Index lds = block.ld;
    if (block.type == data_type_of<AccScalar>()) {
      S = static_cast<const AccScalar*>(block.data);
    } else {
      m_convert.reserve(std::size_t(s_rows) * std::size_t(s_cols));
      RCPU_CUDA_LAUNCH(detail::kernels::convert(block.data, block.type, s_rows, s_cols, block.ld, m_convert.data(),
                                                data_type_of<AccScalar>(), s_rows, m_ctx->stream()));
      S = m_convert.data();
      lds = s_rows;
    }
    if (kernel == GramKernel::gemm)
      detail::gemm(*m_ctx, row ? CUBLAS_OP_N : CUBLAS_OP_T, row ? CUBLAS_OP_T : CUBLAS_OP_N, m_d, m_d, block.tokens,
                   AccScalar(1), S, lds, S, lds, AccScalar(1), m_gram.data(), m_gram.ld());
    else
      detail::syrk(*m_ctx, trans, m_d, block.tokens, AccScalar(1), S, lds, AccScalar(1), m_gram.data(), m_gram.ld());
    m_gram_symmetric = false;
  }

  // this + this: every sum doubles, mean stays, m2 doubles (Chan with delta = 0), G doubles.
  void merge_self() {
    const ScopedDevice on(m_ctx->device());
    for (DeviceBuffer<AccScalar>* b : {&m_sum, &m_abs, &m_sq, &m_m2}) detail::scal(*m_ctx, m_d, AccScalar(2), b->data());
    if (m_mode == GramMode::full) detail::scal(*m_ctx, m_d * m_d, AccScalar(2), m_gram.data());
    m_n *= 2;
  }

  void symmetrize() const {
    if (m_gram_symmetric || m_mode != GramMode::full) return;
    RCPU_CUDA_LAUNCH(detail::kernels::symmetrize_lower(m_gram.data(), m_d, m_gram.ld(),
                                                       m_ctx->stream()));
    m_gram_symmetric = true;
  }

  const Context* m_ctx;
  Index m_d = 0;
  Index m_n = 0;
  GramMode m_mode = GramMode::full;
  Options m_options;
  DeviceBuffer<AccScalar> m_sum, m_abs, m_sq, m_mean, m_m2;
  // Only the lower triangle is updated; the upper one is filled by the first read (hence mutable).
  mutable DeviceMatrix<AccScalar> m_gram;
  mutable bool m_gram_symmetric = true;
  DeviceBuffer<double> m_block;    // the current block's sum, abs, sq, mean, m2 (5 d doubles)
  DeviceBuffer<double> m_scratch;  // per-chunk partial sums
  DeviceBuffer<AccScalar> m_convert;  // a block converted to AccScalar
};

using DeviceStatisticsf = DeviceStatistics<float>;
using DeviceStatisticsd = DeviceStatistics<double>;

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_STATISTICS_HPP
