// SPDX-License-Identifier: MIT
#ifndef RCPU_STATISTICS_HPP
#define RCPU_STATISTICS_HPP

/// \file statistics.hpp
/// Streamed statistics of a linear layer's input: everything the scores and the compensations need,
/// so that calibration activations never have to be stored.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <sstream>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/blas.hpp"
#include "detail/checks.hpp"
#include "error.hpp"

namespace rcpu {

namespace detail {
// Reaches a Statistics' state for reductions across processes (rcpu/mpi.hpp, which defines it).
struct StatisticsAccess;
}  // namespace detail

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
    m_center.setZero(m_d);
    m_center_lo.setZero(m_d);
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
  /// \throws rcpu::invalid_argument if the block has the wrong number of columns, a NaN/Inf, or
  ///         values whose sums overflow AccScalar; the statistics are then unchanged.
  template <typename Derived>
  Statistics& update(const Eigen::MatrixBase<Derived>& block) {
    static_assert(std::is_same<typename Derived::Scalar, Scalar>::value,
                  "rcpu::Statistics<Scalar>::update: the block's scalar must be Scalar");
    detail::require(block.cols() == m_d, "update: block is " + detail::shape(block) + " but the statistics have " +
                                             std::to_string(m_d) + " channels (expected Nx" + std::to_string(m_d) +
                                             ", rows = tokens)");
    const auto& X = block.derived();
    if (X.rows() == 0) return *this;
    // Two phases, so that a bad block changes nothing: the per-channel sums of the whole block
    // (which also reveal any NaN/Inf), then the commit and the Gram.
    constexpr bool direct = (int(Derived::Flags) & int(Eigen::DirectAccessBit)) != 0;
    if constexpr (direct) {
      if (X.innerStride() == 1) {  // read in place (a Matrix, a Map, a Block of either)
        BlockSums b = start_sums(X);
        add_sums(X, b);
        if (shift_is_far(b)) {
          b = start_sums_at(b.c + b.e / AccScalar(b.n));
          add_sums(X, b);
        }
        commit_sums(X, b);
        if (m_mode == GramMode::full)
          for (Index r0 = 0; r0 < X.rows(); r0 += chunk_rows) add_gram(X.middleRows(r0, std::min(chunk_rows, X.rows() - r0)));
        return *this;
      }
    }
    // An expression (or a strided view) is evaluated chunk by chunk, in its own scalar: once per pass
    // when it spans several chunks, which bounds the temporary memory; a single chunk is kept.
    const bool one_chunk = X.rows() <= chunk_rows;
    InputMatrix Xe;
    auto for_each_chunk = [&](auto&& fn) {
      for (Index r0 = 0; r0 < X.rows(); r0 += chunk_rows) {
        if (!one_chunk || Xe.rows() == 0) Xe = X.middleRows(r0, std::min(chunk_rows, X.rows() - r0));
        fn(Xe);
      }
    };
    BlockSums b = start_sums(X);
    for_each_chunk([&](const InputMatrix& c) { add_sums(c, b); });
    if (shift_is_far(b)) {
      b = start_sums_at(b.c + b.e / AccScalar(b.n));
      for_each_chunk([&](const InputMatrix& c) { add_sums(c, b); });
    }
    commit_sums(X, b);
    if (m_mode == GramMode::full) for_each_chunk([&](const InputMatrix& c) { add_gram(c); });
    return *this;
  }

  /// Adds the statistics of a disjoint token shard. Sums add; mean and m2 combine with Chan's rule.
  /// \throws rcpu::invalid_argument on a different channel count or Gram mode.
  Statistics& merge(const Statistics& other) {
    detail::require(other.m_d == m_d, "merge: other has " + std::to_string(other.m_d) + " channels, this has " +
                                          std::to_string(m_d));
    detail::require(other.m_mode == m_mode, "merge: the two statistics have different Gram modes");
    if (other.m_n == 0) return *this;
    if (m_n == 0) {
      m_center = other.m_center;
      m_center_lo = other.m_center_lo;
      m_m2 = other.m_m2;
      m_n = other.m_n;
    } else {
      // The difference of the two running means, each carried to twice double's precision.
      combine_moments((other.m_center - m_center) + (other.m_center_lo - m_center_lo), other.m_n, other.m_m2);
    }
    m_sum += other.m_sum;
    m_abs += other.m_abs;
    m_sq += other.m_sq;
    m_mean = m_sum / AccScalar(m_n);
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
    return from_sums(tokens, sum, abs_sum, sq_sum, m2, gram,
                     gram.size() != 0 || sum.size() == 0 ? GramMode::full : GramMode::diagonal);
  }
  /// The same with the Gram mode given: a 0 x 0 Gram is both "no Gram" and the Gram of 0 channels.
  static Statistics from_sums(Index tokens, const Vector& sum, const Vector& abs_sum, const Vector& sq_sum,
                              const Vector& m2, const Matrix& gram, GramMode mode) {
    const Index d = sum.size();
    detail::require(tokens >= 0, "from_sums: tokens = " + std::to_string(tokens) + " must be >= 0");
    detail::require(abs_sum.size() == d && sq_sum.size() == d && m2.size() == d,
                    "from_sums: sum, abs_sum, sq_sum and m2 must have the same length (got " +
                        std::to_string(d) + ", " + std::to_string(abs_sum.size()) + ", " +
                        std::to_string(sq_sum.size()) + ", " + std::to_string(m2.size()) + ")");
    const bool full = mode == GramMode::full;
    detail::require(full ? (gram.rows() == d && gram.cols() == d) : gram.size() == 0,
                    "from_sums: gram is " + detail::shape(gram) + ", expected " +
                        (full ? detail::shape(d, d) : std::string("empty (GramMode::diagonal)")));
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
    s.m_center = s.m_mean;
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
  friend struct detail::StatisticsAccess;
  using InputMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  // Whether partial Grams are summed in the input scalar (GramPrecision::input_blocks, narrower input).
  static constexpr bool input_narrower = sizeof(Scalar) < sizeof(AccScalar);

  // Per-channel sums of a block about a shift c (the running mean, or the block's first token):
  //   m2_b = sum (x - c)^2 - (sum (x - c))^2 / n_b,
  // with sum (x - c) summed as such (not as sum x - n c, which cancels when |mean| >> std). The
  // relative error of m2_b is then about eps (1 + (mean_b - c)^2 / var_b); where the shift is more
  // than 4 standard deviations from the block's mean (a first token far out, a shifted block), the
  // deviation sums are taken again about c + sum (x - c) / n_b, which is the mean to ~eps |mean|.
  struct BlockSums {
    Index n = 0;
    Vector c, s, a, u, e;  // shift, sum x, sum |x|, sum (x - c)^2, sum (x - c)
    // sum x^2 is not summed but rebuilt as u + c (2 e + n c): with c within 4 standard deviations of
    // the mean (shift_is_far) its terms do not cancel by more than ~2^6, and a fifth accumulator in
    // the pass slowed the Gram benchmark by ~5%.
  };

  template <typename Block>
  BlockSums start_sums(const Block& X) const {
    return start_sums_at(m_n > 0 ? m_center : Vector(X.row(0).transpose().template cast<AccScalar>()));
  }
  BlockSums start_sums_at(const Vector& shift) const {
    BlockSums b;
    b.c = shift;
    b.s.setZero(m_d);
    b.a.setZero(m_d);
    b.u.setZero(m_d);
    b.e.setZero(m_d);
    return b;
  }

  // Whether some channel's shift is more than 4 standard deviations from the block's mean:
  // (sum (x - c))^2 / n > 16 m2_b. A NaN/Inf anywhere makes it false (commit_sums reports it).
  bool shift_is_far(const BlockSums& b) const {
    const AccScalar n = AccScalar(b.n);
    for (Index j = 0; j < m_d; ++j) {
      const AccScalar off = b.e(j) * b.e(j) / n;  // n (mean_b - c)^2
      if (AccScalar(17) * off > AccScalar(16) * b.u(j)) return true;
    }
    return false;
  }

  // Sum of N (4 or 8) values in a fixed pairwise order (no reassociation needed to vectorize).
  template <int N>
  static AccScalar pairwise(const AccScalar* l) {
    if constexpr (N == 4) return (l[0] + l[1]) + (l[2] + l[3]);
    else return pairwise<4>(l) + pairwise<4>(l + 4);
  }

  // One pass over a block with unit inner stride, in place. The loops keep independent lanes
  // (4 or 8 tokens of a row-major block, 4 partial sums of a column) so that compilers vectorize them
  // without reassociating; this pass is the only work besides the Gram's SYRK.
  template <typename Chunk>
  void add_sums(const Chunk& X, BlockSums& b) const {
    const Index nb = X.rows(), ld = X.outerStride();
    const Scalar* p = X.data();
    const AccScalar* c = b.c.data();
    AccScalar *s = b.s.data(), *a = b.a.data(), *u = b.u.data(), *e = b.e.data();
    if constexpr (bool(Chunk::IsRowMajor)) {
      // R tokens per sweep over the channels: each accumulator is read and written once per R values
      // (the five accumulators' traffic bounds this loop). 8 for double blocks; float blocks, which
      // also convert, do better with 4 (fewer live registers).
      constexpr int R = sizeof(Scalar) < sizeof(AccScalar) ? 4 : 8;
      const Index full = nb - nb % R;
      for (Index t = 0; t < full; t += R) {
        const Scalar* x = p + t * ld;
        for (Index j = 0; j < m_d; ++j) {
          AccScalar v[R], w[R], av[R], w2[R];
          for (int r = 0; r < R; ++r) {
            v[r] = AccScalar(x[r * ld + j]);
            w[r] = v[r] - c[j];
            av[r] = std::abs(v[r]);
            w2[r] = w[r] * w[r];
          }
          s[j] += pairwise<R>(v);
          a[j] += pairwise<R>(av);
          u[j] += pairwise<R>(w2);
          e[j] += pairwise<R>(w);
        }
      }
      for (Index t = full; t < nb; ++t) {
        const Scalar* x = p + t * ld;
        for (Index j = 0; j < m_d; ++j) {
          const AccScalar v = AccScalar(x[j]), dv = v - c[j];
          s[j] += v;
          a[j] += std::abs(v);
          u[j] += dv * dv;
          e[j] += dv;
        }
      }
    } else {
      constexpr int L = 4;  // lanes per accumulator (8 measured no faster)
      for (Index j = 0; j < m_d; ++j) {
        const Scalar* x = p + j * ld;
        const AccScalar cj = c[j];
        AccScalar ls[L] = {}, la[L] = {}, lu[L] = {}, le[L] = {};
        const Index full = nb - nb % L;
        for (Index t = 0; t < full; t += L)
          for (int l = 0; l < L; ++l) {
            const AccScalar v = AccScalar(x[t + l]), dv = v - cj;
            ls[l] += v;
            la[l] += std::abs(v);
            lu[l] += dv * dv;
            le[l] += dv;
          }
        for (Index t = full; t < nb; ++t) {
          const AccScalar v = AccScalar(x[t]), dv = v - cj;
          ls[0] += v;
          la[0] += std::abs(v);
          lu[0] += dv * dv;
          le[0] += dv;
        }
        s[j] += pairwise<L>(ls);
        a[j] += pairwise<L>(la);
        u[j] += pairwise<L>(lu);
        e[j] += pairwise<L>(le);
      }
    }
    b.n += nb;
  }

  // Checks the block's sums (a NaN/Inf anywhere in the block makes sum |x| non-finite) and adds them.
  template <typename Derived>
  void commit_sums(const Derived& X, const BlockSums& b) {
    const AccScalar n = AccScalar(b.n);
    // sum x^2 = sum ((x - c) + c)^2
    const Vector q = (b.u + b.c.cwiseProduct(AccScalar(2) * b.e + n * b.c)).cwiseMax(AccScalar(0));
    if (!(b.a.allFinite() && b.s.allFinite() && q.allFinite() && b.u.allFinite() && b.e.allFinite())) {
      detail::require_finite(X, "update: block");  // names the entry when there is one
      std::ostringstream os;
      os << "update: the sums of block " << detail::shape(X) << " overflow the accumulator (|x| up to "
         << double(X.cwiseAbs().maxCoeff()) << ")";
      detail::fail(os.str());
    }
    const Vector shift = b.e / n;  // mean_b - c
    const Vector bm2 = (b.u - b.e.cwiseAbs2() / n).cwiseMax(AccScalar(0));
    if (m_n == 0) {
      two_sum(b.c, shift, m_center, m_center_lo);  // the block's mean, c + sum (x - c) / n, to ~eps^2
      m_m2 = bm2;
      m_n = b.n;
    } else {
      // mean_b - running mean = (c - center) + sum (x - c) / n - center_lo, with c = center unless
      // the block was re-shifted.
      combine_moments((b.c - m_center) + shift - m_center_lo, b.n, bm2);
    }
    m_sum += b.s;
    m_abs += b.a;
    m_sq += q;
    m_mean = m_sum / AccScalar(m_n);  // as from_sums() rebuilds it: saved statistics load back the same
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

  // Chan, Golub & LeVeque's pairwise update of (n, running mean, m2) with a block of nb tokens whose
  // mean is `delta` above the running mean. The running mean is kept as an unevaluated sum
  // center + center_lo (Dekker's two-sum), so that its rounding, about eps |mean| per update, does not
  // enter delta: with |mean| >> std that rounding is what would otherwise limit m2 (eps |mean| / std).
  void combine_moments(const Vector& delta, Index nb, const Vector& bm2) {
    const AccScalar na = AccScalar(m_n), nbb = AccScalar(nb), nt = na + nbb;
    m_m2 += bm2 + delta.cwiseAbs2() * (na * nbb / nt);
    for (Index j = 0; j < m_d; ++j) {
      const AccScalar step = m_center_lo(j) + delta(j) * (nbb / nt);
      two_sum(m_center(j), step, m_center(j), m_center_lo(j));
    }
    m_n += nb;
  }
  // hi + lo = a + b exactly, hi = fl(a + b) (Knuth's two-sum).
  static void two_sum(AccScalar a, AccScalar b, AccScalar& hi, AccScalar& lo) {
    const AccScalar s = a + b, bb = s - a;
    lo = (a - (s - bb)) + (b - bb);
    hi = s;
  }
  static void two_sum(const Vector& a, const Vector& b, Vector& hi, Vector& lo) {
    hi.resize(a.size());
    lo.resize(a.size());
    for (Index j = 0; j < a.size(); ++j) two_sum(a(j), b(j), hi(j), lo(j));
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
  // Running mean as center + center_lo: the shift of the next block and Chan's update (combine_moments).
  Vector m_center, m_center_lo;
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
