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
#include "detail/checks.hpp"
#include "error.hpp"

namespace rcpu {

/// Whether a Statistics object accumulates the full Gram `sum x x^T` or only its diagonal.
enum class GramMode {
  full,     ///< keep the d x d Gram: needed by every compensation
  diagonal  ///< keep only per-channel sums: enough for every score, O(d) memory
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

  Statistics() : Statistics(0) {}

  /// \param channels  number of input channels d_in (>= 0)
  /// \param mode      GramMode::full (default) or GramMode::diagonal
  explicit Statistics(Index channels, GramMode mode = GramMode::full) : m_mode(mode) {
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
      m_gram += other.m_gram;  // both lower triangles are valid; the upper is refreshed lazily
      m_gram_symmetric = m_gram_symmetric && other.m_gram_symmetric;
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
  // Dispatch so that a block already in AccScalar with direct memory access (a Matrix, a Map, a
  // Block of either, in either storage order) is read in place; anything else is evaluated once.
  template <typename Chunk>
  void add_chunk(const Chunk& X) {
    if (X.rows() == 0) return;
    constexpr bool direct = (int(Chunk::Flags) & int(Eigen::DirectAccessBit)) != 0;
    if constexpr (std::is_same<Scalar, AccScalar>::value && direct) {
      add_chunk_in_place(X);
    } else {
      const Matrix Xa = X.template cast<AccScalar>();
      add_chunk_in_place(Xa);
    }
  }

  template <typename Chunk>
  void add_chunk_in_place(const Chunk& Xa) {
    const Index nb = Xa.rows();
    const Vector bsum = Xa.colwise().sum().transpose();
    const Vector bmean = bsum / AccScalar(nb);
    const Vector bm2 = (Xa.rowwise() - bmean.transpose()).array().square().colwise().sum().transpose();
    combine_moments(nb, bmean, bm2);
    m_sum += bsum;
    m_abs += Xa.cwiseAbs().colwise().sum().transpose();
    m_sq += Xa.cwiseAbs2().colwise().sum().transpose();
    if (m_mode == GramMode::full) {
      // Lower triangle only: half the flops of X^T X. The upper half is filled on first read.
      m_gram.template selfadjointView<Eigen::Lower>().rankUpdate(Xa.transpose());
      m_gram_symmetric = false;
    }
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
    if (m_gram_symmetric) return;
    for (Index j = 1; j < m_d; ++j) m_gram.col(j).head(j) = m_gram.row(j).head(j).transpose();
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
  Vector m_sum, m_abs, m_sq, m_mean, m_m2;
  // Only the lower triangle is updated; the upper one is filled lazily by gram() (hence mutable).
  // Consequence: the first gram() after an update() writes, so it must not race with other readers.
  mutable Matrix m_gram;
  mutable bool m_gram_symmetric = true;
};

using Statisticsf = Statistics<float>;
using Statisticsd = Statistics<double>;

}  // namespace rcpu

#endif  // RCPU_STATISTICS_HPP
