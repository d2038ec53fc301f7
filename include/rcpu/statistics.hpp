// SPDX-License-Identifier: MIT
#ifndef RCPU_STATISTICS_HPP
#define RCPU_STATISTICS_HPP

/// \file statistics.hpp
/// Streamed statistics of a linear layer's input: everything the scores and the compensations need,
/// so that calibration activations never have to be stored.

#include <algorithm>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/blas.hpp"
#include "detail/checks.hpp"
#include "error.hpp"

namespace rcpu {

/// Whether a Statistics object accumulates the full Gram `sum x x^T` or only its diagonal.
enum class GramMode {
  full,     ///< keep the d x d Gram: needed by every compensation
  diagonal  ///< keep only per-channel sums: enough for every score, O(d) memory
};

/// How the Gram's products are summed when the token blocks are narrower than the accumulator
/// (float blocks, double sums). Irrelevant otherwise.
enum class GramPrecision {
  /// Every product is summed in AccScalar (double): the default. Float blocks are converted to double
  /// and go through DSYRK, so they run at double speed (about half of SSYRK's).
  accumulator,
  /// Products are summed in the block's scalar (SSYRK, about twice as fast) over at most
  /// Statistics::input_block_tokens tokens, and those partial Grams are added in AccScalar. The Gram
  /// then carries float rounding of sums over 4096 tokens: a relative error of about 1e-6 per entry
  /// (measured, tests/test_fast_paths.cpp), bounded by 4096 * 2^-24 = 2.4e-4 of sum_t |x_i x_j|.
  /// Costs one extra d x d matrix of the block's scalar. All other statistics stay exact in double.
  input_blocks
};

/// Accumulator of the input statistics of one linear layer.
///
/// Token blocks have one row per token and one column per input channel; row- and column-major
/// blocks, expressions and `Eigen::Map`s over a caller's buffer are all taken without a copy when
/// `Scalar == AccScalar`. Per channel j it keeps (in `AccScalar`, double by default):
///   n        token count
///   s1_j     sum_t x_jt                 (sum())
///   a_j      sum_t |x_jt|               (abs_sum())
///   s2_j     sum_t x_jt^2               (sq_sum())
///   m2_j     sum_t (x_jt - mean_j)^2    (m2(), merged with Chan et al.'s update, so the variance
///                                        stays accurate when |mean| >> std)
///   G        sum_t x_t x_t^T            (gram(); GramMode::full only)
/// Statistics of disjoint token shards combine exactly with merge().
///
/// Speed: the Gram update is one ?SYRK per block on the block's own memory (CBLAS with
/// RCPU_USE_BLAS, Eigen's rank update otherwise), the per-channel sums one pass over the block.
///
/// \tparam Scalar     scalar of the token blocks (float or double)
/// \tparam AccScalar  scalar the sums are kept in (double unless told otherwise)
template <typename Scalar, typename AccScalar = double>
class Statistics {
  RCPU_STATIC_ASSERT_SCALAR(Scalar);
  RCPU_STATIC_ASSERT_SCALAR(AccScalar);

 public:
  using InputScalar = Scalar;
  using Accumulator = AccScalar;
  using Matrix = Eigen::Matrix<AccScalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<AccScalar, Eigen::Dynamic, 1>;

  /// Rows processed at once inside update(): bounds the temporary memory of a huge block.
  static constexpr Index chunk_rows = 4096;
  /// Tokens summed in the block's scalar before they are added in AccScalar (GramPrecision::input_blocks).
  static constexpr Index input_block_tokens = 4096;

  Statistics() : Statistics(0) {}

  /// \param channels   number of input channels d_in (>= 0)
  /// \param mode       GramMode::full (default) or GramMode::diagonal
  /// \param precision  GramPrecision::accumulator (default) or GramPrecision::input_blocks
  explicit Statistics(Index channels, GramMode mode = GramMode::full,
                      GramPrecision precision = GramPrecision::accumulator)
      : m_mode(mode), m_precision(precision) {
    detail::require(channels >= 0, "channels = " + std::to_string(channels) + " must be >= 0");
    m_d = channels;
    reset();
  }

  /// Forgets all tokens, keeping the channel count and the Gram mode.
  void reset() {
    m_n = 0;
    m_sum.setZero(m_d);
    m_abs.setZero(m_d);
    m_sq.setZero(m_d);
    m_mean.setZero(m_d);
    m_m2.setZero(m_d);
    if (m_mode == GramMode::full)
      m_gram.setZero(m_d, m_d);
    else
      m_gram.resize(0, 0);
    m_pending.resize(0, 0);
    m_pending_tokens = 0;
    m_gram_symmetric = true;
  }

  /// Adds a block of tokens (rows = tokens, columns = channels).
  /// \throws rcpu::invalid_argument if the block has the wrong number of columns or a NaN/Inf;
  ///         the statistics are then unchanged.
  template <typename Derived>
  Statistics& update(const Eigen::MatrixBase<Derived>& block) {
    static_assert(std::is_same<typename Derived::Scalar, Scalar>::value,
                  "rcpu::Statistics<Scalar>::update: the block's scalar must be Scalar");
    detail::require(block.cols() == m_d, "update: block is " + detail::shape(block) + " but the statistics have " +
                                             std::to_string(m_d) + " channels (expected Nx" + std::to_string(m_d) +
                                             ", rows = tokens)");
    detail::require_finite(block.derived(), "update: block");
    const auto& X = block.derived();
    for (Index r0 = 0; r0 < X.rows(); r0 += chunk_rows) {
      const Index len = std::min(chunk_rows, X.rows() - r0);
      add_chunk(X.middleRows(r0, len));
    }
    return *this;
  }

  /// Adds the statistics of a disjoint token shard. Sums add; mean and m2 combine with Chan's rule.
  /// \throws rcpu::invalid_argument on a different channel count or Gram mode.
  Statistics& merge(const Statistics& other) {
    detail::require(other.m_d == m_d, "merge: other has " + std::to_string(other.m_d) + " channels, this has " +
                                          std::to_string(m_d));
    detail::require(other.m_mode == m_mode, "merge: the two statistics have different Gram modes");
    if (other.m_n == 0) return *this;
    combine_moments(other.m_n, other.m_mean, other.m_m2);
    m_sum += other.m_sum;
    m_abs += other.m_abs;
    m_sq += other.m_sq;
    if (m_mode == GramMode::full) {
      // Both lower triangles are valid; the upper one is refreshed lazily. `other` is left as it is.
      m_gram += other.m_gram;
      if (other.m_pending_tokens > 0)
        m_gram.template triangularView<Eigen::Lower>() += other.m_pending.template cast<AccScalar>();
      m_gram_symmetric = m_gram_symmetric && other.m_gram_symmetric && other.m_pending_tokens == 0;
    }
    return *this;
  }

  /// Rebuilds statistics from saved sums (e.g. a file, or a GPU accumulator). `gram` may be empty
  /// for GramMode::diagonal. Every argument is validated (shapes, finiteness, sign of the moments).
  static Statistics from_sums(Index tokens, const Vector& sum, const Vector& abs_sum, const Vector& sq_sum,
                              const Vector& m2, const Matrix& gram) {
    const Index d = sum.size();
    detail::require(tokens >= 0, "from_sums: tokens = " + std::to_string(tokens) + " must be >= 0");
    detail::require(abs_sum.size() == d && sq_sum.size() == d && m2.size() == d,
                    "from_sums: sum, abs_sum, sq_sum and m2 must have the same length (got " +
                        std::to_string(d) + ", " + std::to_string(abs_sum.size()) + ", " +
                        std::to_string(sq_sum.size()) + ", " + std::to_string(m2.size()) + ")");
    const bool full = gram.size() != 0 || d == 0;
    detail::require(!full || (gram.rows() == d && gram.cols() == d),
                    "from_sums: gram is " + detail::shape(gram) + ", expected " + detail::shape(d, d) + " or empty");
    detail::require_finite(sum, "from_sums: sum");
    detail::require_finite(abs_sum, "from_sums: abs_sum");
    detail::require_finite(sq_sum, "from_sums: sq_sum");
    detail::require_finite(m2, "from_sums: m2");
    detail::require_finite(gram, "from_sums: gram");
    detail::require((abs_sum.array() >= 0).all() && (sq_sum.array() >= 0).all() && (m2.array() >= 0).all(),
                    "from_sums: abs_sum, sq_sum and m2 must be >= 0");
    detail::require(tokens > 0 || (sum.isZero(0) && sq_sum.isZero(0)), "from_sums: tokens = 0 with non-zero sums");
    Statistics s(d, full ? GramMode::full : GramMode::diagonal);
    s.m_n = tokens;
    s.m_sum = sum;
    s.m_abs = abs_sum;
    s.m_sq = sq_sum;
    s.m_m2 = m2;
    if (tokens > 0) s.m_mean = sum / AccScalar(tokens);
    if (full) s.m_gram = gram;
    return s;
  }

  Index channels() const { return m_d; }
  Index tokens() const { return m_n; }
  GramMode gram_mode() const { return m_mode; }
  GramPrecision gram_precision() const { return m_precision; }
  bool has_gram() const { return m_mode == GramMode::full; }

  /// Raw sums (valid with zero tokens: all zero).
  const Vector& sum() const { return m_sum; }
  const Vector& abs_sum() const { return m_abs; }
  const Vector& sq_sum() const { return m_sq; }
  /// Sum of squared deviations from the mean, per channel.
  const Vector& m2() const { return m_m2; }

  /// Per-channel mean, sum / n. \throws rcpu::invalid_argument with no tokens.
  const Vector& mean() const {
    require_tokens("mean");
    return m_mean;
  }
  /// Per-channel population variance m2 / n (never negative).
  Vector variance() const {
    require_tokens("variance");
    return m_m2 / AccScalar(m_n);
  }
  /// Per-channel mean of |x|.
  Vector mean_abs() const {
    require_tokens("mean_abs");
    return m_abs / AccScalar(m_n);
  }
  /// Per-channel L2 norm over tokens, ||X_j||_2 = sqrt(s2_j).
  Vector l2_norm() const {
    require_tokens("l2_norm");
    return m_sq.cwiseSqrt();
  }
  /// The symmetric Gram matrix sum_t x_t x_t^T (d x d).
  /// \throws rcpu::invalid_argument in GramMode::diagonal or with no tokens.
  const Matrix& gram() const {
    require_tokens("gram");
    require_gram("gram");
    symmetrize();
    return m_gram;
  }
  /// Population covariance G / n - mean mean^T, with the diagonal taken from the stable variance.
  Matrix covariance() const {
    const Matrix& G = gram();
    Matrix C = G / AccScalar(m_n) - m_mean * m_mean.transpose();
    C.diagonal() = variance();
    return C;
  }

 private:
  using InputMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  // Whether partial Grams are summed in the input scalar (GramPrecision::input_blocks, narrower input).
  static constexpr bool input_narrower = sizeof(Scalar) < sizeof(AccScalar);

  // A block with direct memory access and unit inner stride (a Matrix, a Map, a Block of either, in
  // either storage order) is read in place; anything else is evaluated once, in its own scalar.
  template <typename Chunk>
  void add_chunk(const Chunk& X) {
    if (X.rows() == 0) return;
    constexpr bool direct = (int(Chunk::Flags) & int(Eigen::DirectAccessBit)) != 0;
    if constexpr (direct) {
      if (X.innerStride() == 1) {
        add_chunk_in_place(X);
        return;
      }
    }
    const InputMatrix Xe = X;
    add_chunk_in_place(Xe);
  }

  template <typename Chunk>
  void add_chunk_in_place(const Chunk& X) {
    add_moments(X);
    if (m_mode == GramMode::full) add_gram(X);
  }

  // Per-channel sums in one pass over the block, in AccScalar. m2 of the block is taken about a
  // shift c close to the mean (the running mean, or the block's first token), which keeps it exact
  // when |mean| >> std:  m2_b = sum (x - c)^2 - (sum (x - c))^2 / n_b.
  template <typename Chunk>
  void add_moments(const Chunk& X) {
    const Index nb = X.rows();
    const Vector c = m_n > 0 ? m_mean : Vector(X.row(0).transpose().template cast<AccScalar>());
    Vector s(m_d), a(m_d), q(m_d), u(m_d);
    if constexpr (bool(Chunk::IsRowMajor)) {
      s.setZero();
      a.setZero();
      q.setZero();
      u.setZero();
      for (Index i = 0; i < nb; ++i) {
        const auto x = X.row(i).transpose().template cast<AccScalar>();
        s.array() += x.array();
        a.array() += x.array().abs();
        q.array() += x.array().square();
        u.array() += (x.array() - c.array()).square();
      }
    } else {
      for (Index j = 0; j < m_d; ++j) {  // one column at a time: it stays in L1 across the sums
        const auto x = X.col(j).template cast<AccScalar>();
        s(j) = x.sum();
        a(j) = x.cwiseAbs().sum();
        q(j) = x.squaredNorm();
        u(j) = (x.array() - c(j)).square().sum();
      }
    }
    const AccScalar n = AccScalar(nb);
    const Vector t = s - n * c;  // sum (x - c)
    const Vector bmean = s / n;
    const Vector bm2 = (u - t.cwiseAbs2() / n).cwiseMax(AccScalar(0));
    combine_moments(nb, bmean, bm2);
    m_sum += s;
    m_abs += a;
    m_sq += q;
  }

  // Lower triangle of the Gram += X^T X. A row-major N x d block is, in memory, the column-major
  // d x N matrix X^T: SYRK takes it as it is in both cases.
  template <typename Chunk>
  void add_gram(const Chunk& X) {
    using ConstMap = Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>, 0, Eigen::OuterStride<>>;
    const bool row_major = bool(Chunk::IsRowMajor);
    const ConstMap A(X.data(), row_major ? X.cols() : X.rows(), row_major ? X.rows() : X.cols(),
                     Eigen::OuterStride<>(X.outerStride()));
    const detail::Op op = row_major ? detail::Op::none : detail::Op::transpose;
    if constexpr (std::is_same<Scalar, AccScalar>::value) {
      detail::syrk_lower<AccScalar>(op, AccScalar(1), A, AccScalar(1), m_gram);
    } else {
      if (input_narrower && m_precision == GramPrecision::input_blocks) {
        if (m_pending.rows() != m_d) m_pending.setZero(m_d, m_d);
        detail::syrk_lower<Scalar>(op, Scalar(1), A, Scalar(1), m_pending);
        m_pending_tokens += X.rows();
        if (m_pending_tokens >= input_block_tokens) flush_pending();
      } else {
        // Converted in slices of at most ~64 MB, in the block's own layout (a plain copy).
        const Index per = std::max<Index>(256, std::min<Index>(chunk_rows, (Index(1) << 23) / std::max<Index>(1, m_d)));
        Matrix Ac;
        const Index tokens = X.rows();
        for (Index t0 = 0; t0 < tokens; t0 += per) {
          const Index len = std::min(per, tokens - t0);
          if (row_major)
            Ac = A.middleCols(t0, len).template cast<AccScalar>();
          else
            Ac = A.middleRows(t0, len).template cast<AccScalar>();
          detail::syrk_lower<AccScalar>(op, AccScalar(1), Ac, AccScalar(1), m_gram);
        }
      }
    }
    m_gram_symmetric = false;
  }

  // Adds the partial Gram summed in the input scalar (GramPrecision::input_blocks) to the Gram.
  void flush_pending() const {
    if (m_pending_tokens == 0) return;
    m_gram.template triangularView<Eigen::Lower>() += m_pending.template cast<AccScalar>();
    m_pending.template triangularView<Eigen::Lower>().setZero();
    m_pending_tokens = 0;
    m_gram_symmetric = false;
  }

  // Chan, Golub & LeVeque's pairwise update of (n, mean, m2).
  void combine_moments(Index nb, const Vector& bmean, const Vector& bm2) {
    if (m_n == 0) {
      m_mean = bmean;
      m_m2 = bm2;
      m_n = nb;
      return;
    }
    const AccScalar na = AccScalar(m_n), nbb = AccScalar(nb), nt = na + nbb;
    const Vector delta = bmean - m_mean;
    m_mean += delta * (nbb / nt);
    m_m2 += bm2 + delta.cwiseAbs2() * (na * nbb / nt);
    m_n += nb;
  }

  void symmetrize() const {
    flush_pending();
    if (m_gram_symmetric) return;
    detail::symmetrize_lower<AccScalar>(m_gram);
    m_gram_symmetric = true;
  }

  void require_tokens(const char* what) const {
    detail::require(m_n > 0, std::string(what) + ": the statistics hold no tokens (channels = " +
                                 std::to_string(m_d) + ")");
  }
  void require_gram(const char* what) const {
    detail::require(m_mode == GramMode::full,
                    std::string(what) + ": the Gram was not accumulated (statistics built with GramMode::diagonal)");
  }

  Index m_d = 0;
  Index m_n = 0;
  GramMode m_mode = GramMode::full;
  GramPrecision m_precision = GramPrecision::accumulator;
  Vector m_sum, m_abs, m_sq, m_mean, m_m2;
  // Only the lower triangle is updated; the upper one is filled lazily by gram() (hence mutable).
  // Consequence: the first gram() after an update() writes, so it must not race with other readers.
  mutable Matrix m_gram;
  mutable bool m_gram_symmetric = true;
  // GramPrecision::input_blocks: partial Gram (lower triangle) in the input scalar, added to m_gram
  // every input_block_tokens tokens and by gram().
  mutable InputMatrix m_pending;
  mutable Index m_pending_tokens = 0;
};

using Statisticsf = Statistics<float>;
using Statisticsd = Statistics<double>;

}  // namespace rcpu

#endif  // RCPU_STATISTICS_HPP
