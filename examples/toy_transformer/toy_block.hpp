// SPDX-License-Identifier: MIT
// A LLaMA-style decoder block in plain Eigen, with synthetic weights and hidden states shaped like a
// real model's, and the RCPU pruning pipeline applied to it: calibrate on one dense pass, prune heads
// (o_proj columns, q/k/v rows) and MLP channels (down_proj columns, gate/up rows), compensate, and
// evaluate on held-out tokens. Used by examples/toy_transformer/toy_transformer.cpp and the tests.
#ifndef RCPU_EXAMPLES_TOY_BLOCK_HPP
#define RCPU_EXAMPLES_TOY_BLOCK_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <rcpu/rcpu.hpp>  // before Eigen (rcpu/detail/intrinsics.hpp)

#include <Eigen/Core>

namespace rcpu_toy {

using rcpu::Index;

/// Sizes of the block. The defaults are a small LLaMA-like layer (LLaMA-7B is 4096 / 32 / 11008).
struct BlockConfig {
  Index d_model = 512;
  Index n_heads = 8;
  Index n_kv_heads = 8;  ///< < n_heads: grouped-query attention (n_heads must be a multiple)
  Index d_mlp = 1376;
  Index seq_len = 128;  ///< tokens per sequence (causal attention runs within a sequence)
  double rope_base = 10000.0;
  double rms_eps = 1e-5;

  Index head_dim() const { return d_model / n_heads; }

  /// \throws rcpu::invalid_argument on sizes that do not make a block.
  void validate() const {
    auto fail = [](const std::string& m) { throw rcpu::invalid_argument("BlockConfig: " + m); };
    if (d_model < 2 || n_heads < 1 || d_mlp < 1 || seq_len < 1) fail("sizes must be positive");
    if (d_model % n_heads != 0)
      fail("d_model = " + std::to_string(d_model) + " is not a multiple of n_heads = " + std::to_string(n_heads));
    if (head_dim() % 2 != 0) fail("head_dim = " + std::to_string(head_dim()) + " must be even (RoPE rotates pairs)");
    if (n_kv_heads < 1 || n_heads % n_kv_heads != 0)
      fail("n_heads = " + std::to_string(n_heads) + " is not a multiple of n_kv_heads = " + std::to_string(n_kv_heads));
  }
};

/// The weights of one block, in PyTorch's layout (out x in): y = x W^T for a token row x.
template <typename Scalar>
struct Block {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  Index head_dim = 0;
  double rope_base = 10000.0;
  double rms_eps = 1e-5;
  Vector attn_norm, mlp_norm;  ///< RMSNorm gains (d)
  Matrix wq;                   ///< (n_heads * head_dim) x d
  Matrix wk, wv;               ///< (n_kv_heads * head_dim) x d
  Matrix wo;                   ///< d x (n_heads * head_dim)
  Vector bo;                   ///< d, or empty (a compensation may add one)
  Matrix w_gate, w_up;         ///< d_mlp x d
  Matrix w_down;               ///< d x d_mlp
  Vector b_down;               ///< d, or empty
  std::vector<Index> head_kv;  ///< query head h reads KV head head_kv[h]

  Index d_model() const { return wo.rows(); }
  Index n_heads() const { return Index(head_kv.size()); }
  Index n_kv_heads() const { return head_dim > 0 ? wk.rows() / head_dim : 0; }
  Index d_mlp() const { return w_down.cols(); }

  template <typename T>
  Block<T> cast() const {
    Block<T> b;
    b.head_dim = head_dim;
    b.rope_base = rope_base;
    b.rms_eps = rms_eps;
    b.attn_norm = attn_norm.template cast<T>();
    b.mlp_norm = mlp_norm.template cast<T>();
    b.wq = wq.template cast<T>();
    b.wk = wk.template cast<T>();
    b.wv = wv.template cast<T>();
    b.wo = wo.template cast<T>();
    b.bo = bo.template cast<T>();
    b.w_gate = w_gate.template cast<T>();
    b.w_up = w_up.template cast<T>();
    b.w_down = w_down.template cast<T>();
    b.b_down = b_down.template cast<T>();
    b.head_kv = head_kv;
    return b;
  }
};

// ---------------------------------------------------------------------------------------------
// Forward pass. Tokens are rows; consecutive runs of seq_len rows are independent sequences (the
// last one may be shorter), each with causal attention and positions 0, 1, ...

namespace detail {

template <typename Derived, typename Gain>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> rms_norm(const Eigen::MatrixBase<Derived>& X,
                                                                                const Gain& gain, double eps) {
  using S = typename Derived::Scalar;
  const Eigen::Matrix<S, Eigen::Dynamic, 1> inv =
      ((X.cwiseAbs2().rowwise().sum() / S(X.cols())).array() + S(eps)).rsqrt().matrix();
  return inv.asDiagonal() * X * gain.asDiagonal();
}

// Rotates the pairs (2i, 2i+1) of every head of the rows [row0, row0 + len) by position * theta_i.
template <typename S>
void apply_rope(Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>& M, Index row0, Index len, Index head_dim,
                double base) {
  const Index half = head_dim / 2, heads = M.cols() / head_dim;
  for (Index i = 0; i < half; ++i) {
    const double inv_freq = std::pow(base, -2.0 * double(i) / double(head_dim));
    for (Index t = 0; t < len; ++t) {
      const S c = S(std::cos(double(t) * inv_freq)), s = S(std::sin(double(t) * inv_freq));
      for (Index h = 0; h < heads; ++h) {
        S& a = M(row0 + t, h * head_dim + 2 * i);
        S& b = M(row0 + t, h * head_dim + 2 * i + 1);
        const S a0 = a;
        a = a0 * c - b * s;
        b = a0 * s + b * c;
      }
    }
  }
}

}  // namespace detail

/// The input of o_proj (tokens x n_heads*head_dim): every query head's attention output, in head order.
template <typename S>
typename Block<S>::Matrix attention_context(const Block<S>& b, const typename Block<S>::Matrix& X, Index seq_len) {
  using Matrix = typename Block<S>::Matrix;
  const Index n = X.rows(), hd = b.head_dim;
  const Matrix Xn = detail::rms_norm(X, b.attn_norm, b.rms_eps);
  Matrix Q = Xn * b.wq.transpose(), K = Xn * b.wk.transpose();
  const Matrix V = Xn * b.wv.transpose();
  Matrix ctx(n, b.n_heads() * hd);
  const S scale = S(1.0 / std::sqrt(double(hd)));
  for (Index s0 = 0; s0 < n; s0 += seq_len) {
    const Index T = std::min(seq_len, n - s0);
    detail::apply_rope(Q, s0, T, hd, b.rope_base);
    detail::apply_rope(K, s0, T, hd, b.rope_base);
    for (Index h = 0; h < b.n_heads(); ++h) {
      const Index g = b.head_kv[std::size_t(h)];
      Matrix P = (Q.block(s0, h * hd, T, hd) * K.block(s0, g * hd, T, hd).transpose()) * scale;
      for (Index i = 0; i < T; ++i) {  // causal softmax of row i over positions 0..i
        const S m = P.row(i).head(i + 1).maxCoeff();
        P.row(i).head(i + 1) = (P.row(i).head(i + 1).array() - m).exp();
        P.row(i).head(i + 1) /= P.row(i).head(i + 1).sum();
        P.row(i).tail(T - i - 1).setZero();
      }
      ctx.block(s0, h * hd, T, hd).noalias() = P * V.block(s0, g * hd, T, hd);
    }
  }
  return ctx;
}

/// The rest of the block from the o_proj input: h = x + o_proj(ctx); out = h + down(SwiGLU(RMSNorm(h))).
/// \param down_input  if given, receives the input of down_proj (tokens x d_mlp)
template <typename S>
typename Block<S>::Matrix finish_forward(const Block<S>& b, const typename Block<S>::Matrix& X,
                                         const typename Block<S>::Matrix& ctx,
                                         typename Block<S>::Matrix* down_input = nullptr) {
  using Matrix = typename Block<S>::Matrix;
  Matrix H = X;
  H.noalias() += ctx * b.wo.transpose();
  if (b.bo.size()) H.rowwise() += b.bo.transpose();
  const Matrix Hn = detail::rms_norm(H, b.mlp_norm, b.rms_eps);
  const Matrix G = Hn * b.w_gate.transpose();
  Matrix A = Hn * b.w_up.transpose();
  A.array() *= G.array() / (S(1) + (-G.array()).exp());  // SwiGLU: silu(gate) * up
  H.noalias() += A * b.w_down.transpose();
  if (b.b_down.size()) H.rowwise() += b.b_down.transpose();
  if (down_input) *down_input = std::move(A);
  return H;
}

/// The block's output for hidden states X (tokens x d). Optionally records the inputs of o_proj and
/// down_proj, where the pruning statistics are taken.
template <typename S>
typename Block<S>::Matrix forward(const Block<S>& b, const typename Block<S>::Matrix& X, Index seq_len,
                                  typename Block<S>::Matrix* o_input = nullptr,
                                  typename Block<S>::Matrix* down_input = nullptr) {
  typename Block<S>::Matrix ctx = attention_context(b, X, seq_len);
  auto out = finish_forward(b, X, ctx, down_input);
  if (o_input) *o_input = std::move(ctx);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Synthetic weights and hidden states, shaped like a real model's rather than white noise.

namespace detail {

class Sampler {
 public:
  explicit Sampler(std::uint32_t seed) : m_gen(seed) {}
  double normal() { return m_normal(m_gen); }
  double lognormal(double sigma) { return std::exp(sigma * normal()); }
  /// Student-t with `df` degrees of freedom scaled to unit variance: heavy tails.
  double heavy(double df) {
    std::student_t_distribution<double> t(df);
    return t(m_gen) / std::sqrt(df / (df - 2.0));
  }
  Eigen::MatrixXd normal(Index r, Index c) {
    Eigen::MatrixXd m(r, c);
    for (Index j = 0; j < c; ++j)
      for (Index i = 0; i < r; ++i) m(i, j) = normal();
    return m;
  }
  Eigen::MatrixXd heavy(Index r, Index c, double df) {
    Eigen::MatrixXd m(r, c);
    for (Index j = 0; j < c; ++j)
      for (Index i = 0; i < r; ++i) m(i, j) = heavy(df);
    return m;
  }
  Eigen::VectorXd lognormal(Index n, double sigma) {
    Eigen::VectorXd v(n);
    for (Index i = 0; i < n; ++i) v(i) = lognormal(sigma);
    return v;
  }
  std::mt19937& engine() { return m_gen; }

 private:
  std::mt19937 m_gen;
  std::normal_distribution<double> m_normal;
};

// A weight matrix (rows x cols) like a trained one: heavy-tailed entries, rows and columns of
// different importance (log-normal scales), plus a low-rank component; entries ~ gain / sqrt(cols).
inline Eigen::MatrixXd structured_weight(Sampler& rng, Index rows, Index cols, double gain, double row_sigma,
                                         double col_sigma, Index rank = 8) {
  const Eigen::VectorXd rs = rng.lognormal(rows, row_sigma), cs = rng.lognormal(cols, col_sigma);
  Eigen::MatrixXd W = rng.heavy(rows, cols, 5.0);
  const Index r = std::min({rank, rows, cols});
  W += 0.6 * std::sqrt(1.0 / double(r)) * rng.normal(rows, r) * rng.normal(r, cols);
  W = rs.asDiagonal() * W * cs.asDiagonal();
  return W * (gain / std::sqrt(double(cols)) / std::sqrt(1.0 + 0.36));
}

}  // namespace detail

/// Builds a block with synthetic weights: attention heads and MLP channels of unequal importance,
/// heavy-tailed entries, low-rank structure, correlated gate and up projections, and small RMSNorm
/// gains on the hidden state's outlier channels (as trained models learn to damp them).
template <typename S>
Block<S> make_block(const BlockConfig& cfg, std::uint32_t seed) {
  cfg.validate();
  detail::Sampler rng(seed);
  const Index d = cfg.d_model, hd = cfg.head_dim(), H = cfg.n_heads, KV = cfg.n_kv_heads, m = cfg.d_mlp;
  Block<double> b;
  b.head_dim = hd;
  b.rope_base = cfg.rope_base;
  b.rms_eps = cfg.rms_eps;
  b.attn_norm = rng.lognormal(d, 0.2);
  b.mlp_norm = rng.lognormal(d, 0.2);
  b.wq = detail::structured_weight(rng, H * hd, d, 1.6, 0.2, 0.3);
  b.wk = detail::structured_weight(rng, KV * hd, d, 1.6, 0.2, 0.3);
  b.wv = detail::structured_weight(rng, KV * hd, d, 1.0, 0.3, 0.3);
  b.wo = detail::structured_weight(rng, d, H * hd, 1.0, 0.3, 0.3);
  // Heads of unequal importance: a log-normal gain per value head and per o_proj head block.
  for (Index g = 0; g < KV; ++g) b.wv.middleRows(g * hd, hd) *= rng.lognormal(0.5);
  for (Index h = 0; h < H; ++h) b.wo.middleCols(h * hd, hd) *= rng.lognormal(0.5);
  b.w_gate = detail::structured_weight(rng, m, d, 1.5, 0.4, 0.3);
  // up shares part of gate's direction, so that silu(gate) * up has non-zero channel means.
  b.w_up = 0.5 * b.w_gate + std::sqrt(0.75) * detail::structured_weight(rng, m, d, 1.5, 0.4, 0.3);
  b.w_down = detail::structured_weight(rng, d, m, 1.0, 0.3, 0.5);
  for (Index h = 0; h < H; ++h) b.head_kv.push_back(h / (H / KV));
  return b.template cast<S>();
}

/// A distribution of hidden states at the block's input, like a real residual stream: tokens live near a
/// low-dimensional subspace (with noise), channels have means far from zero and unequal scales, a few
/// outlier channels carry large, nearly constant values (as LLMs' "massive activations"), the
/// latent factors are heavy-tailed and correlated along a sequence, and token norms vary.
class HiddenStates {
 public:
  HiddenStates(const BlockConfig& cfg, std::uint32_t seed) : m_cfg(cfg) {
    cfg.validate();
    detail::Sampler rng(seed);
    const Index d = cfg.d_model;
    m_rank = std::max<Index>(4, d / 16);
    Eigen::VectorXd factor_scale(m_rank);
    for (Index k = 0; k < m_rank; ++k) factor_scale(k) = 1.0 / std::sqrt(1.0 + double(k));  // decaying spectrum
    m_mix = factor_scale.asDiagonal() * rng.normal(m_rank, d) * std::sqrt(2.0 / double(m_rank));
    m_scale = rng.lognormal(d, 0.5);
    m_mean = rng.normal(d, 1).col(0).cwiseProduct(m_scale) * 0.8;
    const Index n_out = std::max<Index>(1, d / 128);
    std::vector<Index> idx(static_cast<std::size_t>(d));
    for (Index j = 0; j < d; ++j) idx[std::size_t(j)] = j;
    std::shuffle(idx.begin(), idx.end(), rng.engine());
    for (Index k = 0; k < n_out; ++k) {
      const Index j = idx[std::size_t(k)];
      m_outliers.push_back(j);
      m_mean(j) = (rng.normal() < 0 ? -1.0 : 1.0) * (15.0 + 10.0 * std::abs(rng.normal()));
      m_scale(j) *= 3.0;
    }
  }

  const std::vector<Index>& outlier_channels() const { return m_outliers; }

  /// `n` tokens (rows), as consecutive sequences of seq_len tokens. Different seeds give independent
  /// draws from the same distribution (calibration vs held-out).
  template <typename S>
  Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> sample(Index n, std::uint32_t seed) const {
    detail::Sampler rng(seed);
    const Index d = m_cfg.d_model;
    const double phi = 0.6, df = 4.0;
    Eigen::MatrixXd Z(n, m_rank);
    for (Index t = 0; t < n; ++t)
      for (Index k = 0; k < m_rank; ++k) {
        const double e = rng.heavy(df);
        Z(t, k) = (t % m_cfg.seq_len == 0) ? e : phi * Z(t - 1, k) + std::sqrt(1 - phi * phi) * e;
      }
    Eigen::MatrixXd X = Z * m_mix + 0.35 * rng.heavy(n, d, df);
    Eigen::VectorXd token_scale(n);
    for (Index t = 0; t < n; ++t) token_scale(t) = rng.lognormal(0.25);
    X = token_scale.asDiagonal() * X * m_scale.asDiagonal();
    X.rowwise() += m_mean.transpose();
    return X.cast<S>();
  }

 private:
  BlockConfig m_cfg;
  Index m_rank = 0;
  Eigen::MatrixXd m_mix;
  Eigen::VectorXd m_scale, m_mean;
  std::vector<Index> m_outliers;
};

// ---------------------------------------------------------------------------------------------
// Pruning the block

/// How a block is pruned: the same ratio, score and compensation for both modules, as in the paper.
struct BlockPruneOptions {
  double ratio = 0.2;
  rcpu::Score score = rcpu::Score::rcpu;
  rcpu::Compensation compensation = rcpu::Compensation::rotation;
  /// Ridge of proximal_ridge (and rotation_ridge) as a number of pseudo-tokens: lambda = ridge_tokens * (mean
  /// over channels of E[x^2]), i.e. the prior W' = W_K (Q W_K) weighs as much as that many typical tokens. It
  /// does not depend on the data's scale, and matters less as calibration tokens accumulate.
  double ridge_tokens = 64.0;
  /// Ridge of least_squares, in the same unit: a numerical guard only (the RCPU authors' 1e-4).
  double ls_ridge_tokens = 1e-4;
  /// A module that loses no unit at this ratio (e.g. 10% of 8 heads) is left as it is. Set to false
  /// to compensate it anyway (tests: at ratio 0 every compensation must then give the dense layer back).
  bool skip_unpruned = true;
};

/// A pruned block and what was kept.
template <typename S>
struct PrunedBlock {
  Block<S> block;
  std::vector<Index> kept_heads;     ///< query heads kept (o_proj column blocks, q rows)
  std::vector<Index> kept_kv_heads;  ///< KV heads kept (k/v rows)
  std::vector<Index> kept_o_columns; ///< kept columns of o_proj = columns of the o_proj input
  std::vector<Index> kept_channels;  ///< MLP channels kept (down_proj columns, gate/up rows)
  rcpu::LayerReport o_report, down_report;  ///< on the calibration statistics (empty when skipped)
  bool attention_pruned = false, mlp_pruned = false;
};

/// lambda for a compensation, from the statistics (see BlockPruneOptions::ridge_tokens).
template <typename S, typename A>
double ridge_lambda(const rcpu::Statistics<S, A>& stats, double pseudo_tokens) {
  return pseudo_tokens * double(stats.sq_sum().mean()) / double(stats.tokens());
}

namespace detail {

template <typename S>
rcpu::PrunedLayer<S> prune_module(const typename Block<S>::Matrix& W, const typename Block<S>::Vector& bias,
                                  const rcpu::Statistics<S>& stats, rcpu::PruneOptions opt,
                                  const BlockPruneOptions& bo) {
  if (bo.compensation == rcpu::Compensation::proximal_ridge || bo.compensation == rcpu::Compensation::rotation_ridge)
    opt.compensation_options.lambda = ridge_lambda(stats, bo.ridge_tokens);
  if (bo.compensation == rcpu::Compensation::least_squares)
    opt.compensation_options.lambda = ridge_lambda(stats, bo.ls_ridge_tokens);
  opt.score = bo.score;
  opt.compensation = bo.compensation;
  return bias.size() ? rcpu::prune_layer(W, bias, stats, opt) : rcpu::prune_layer(W, stats, opt);
}

}  // namespace detail

/// Prunes heads and MLP channels of a block from statistics of the inputs of o_proj and down_proj
/// (both taken from the dense block, as the RCPU paper does). o_proj and down_proj are compensated; the
/// rows of q (and of k/v, see below), gate and up that fed the removed units are deleted.
///
/// Grouped-query attention: the paper has no rule (its models are plain multi-head attention). Here
/// query heads are scored and removed on their own, and a KV head is removed only when every query head
/// of its group is gone; the kept query heads keep reading their own KV head.
template <typename S>
PrunedBlock<S> prune_block(const Block<S>& dense, const rcpu::Statistics<S>& o_stats,
                           const rcpu::Statistics<S>& down_stats, const BlockPruneOptions& opt) {
  PrunedBlock<S> out;
  out.block = dense;
  Block<S>& b = out.block;
  const Index hd = dense.head_dim, H = dense.n_heads();

  // Attention heads.
  const bool prune_heads = !opt.skip_unpruned || rcpu::removed_count(H, opt.ratio) > 0;
  if (prune_heads) {
    auto r = detail::prune_module<S>(dense.wo, dense.bo, o_stats, rcpu::PruneOptions::heads(hd, opt.ratio), opt);
    out.kept_heads = r.kept_units;
    out.kept_o_columns = r.kept_columns;
    std::vector<char> kv_used(static_cast<std::size_t>(dense.n_kv_heads()), 0);
    for (Index h : out.kept_heads) kv_used[std::size_t(dense.head_kv[std::size_t(h)])] = 1;
    std::vector<Index> kv_new_index(kv_used.size(), -1);
    for (Index g = 0; g < dense.n_kv_heads(); ++g)
      if (kv_used[std::size_t(g)]) {
        kv_new_index[std::size_t(g)] = Index(out.kept_kv_heads.size());
        out.kept_kv_heads.push_back(g);
      }
    const std::vector<Index> kv_rows = rcpu::expand_groups(out.kept_kv_heads, hd);
    b.wq = rcpu::take_rows(dense.wq, out.kept_o_columns);  // q rows of a head = its o_proj columns
    b.wk = rcpu::take_rows(dense.wk, kv_rows);
    b.wv = rcpu::take_rows(dense.wv, kv_rows);
    b.wo = r.weight;
    b.bo = r.bias;
    b.head_kv.clear();
    for (Index h : out.kept_heads) b.head_kv.push_back(kv_new_index[std::size_t(dense.head_kv[std::size_t(h)])]);
    out.o_report = r.report;
    out.attention_pruned = true;
  } else {
    for (Index h = 0; h < H; ++h) out.kept_heads.push_back(h);
    for (Index g = 0; g < dense.n_kv_heads(); ++g) out.kept_kv_heads.push_back(g);
    out.kept_o_columns = rcpu::expand_groups(out.kept_heads, hd);
  }

  // MLP channels.
  const bool prune_channels = !opt.skip_unpruned || rcpu::removed_count(dense.d_mlp(), opt.ratio) > 0;
  if (prune_channels) {
    auto r = detail::prune_module<S>(dense.w_down, dense.b_down, down_stats, rcpu::PruneOptions::channels(opt.ratio), opt);
    out.kept_channels = r.kept_columns;
    b.w_gate = rcpu::take_rows(dense.w_gate, out.kept_channels);
    b.w_up = rcpu::take_rows(dense.w_up, out.kept_channels);
    b.w_down = r.weight;
    b.b_down = r.bias;
    out.down_report = r.report;
    out.mlp_pruned = true;
  } else {
    for (Index j = 0; j < dense.d_mlp(); ++j) out.kept_channels.push_back(j);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation on held-out tokens

/// Dense reference on held-out tokens: inputs, the o_proj and down_proj inputs and outputs, the block's
/// output and its update out - x, and the token Gram of the update (reused by every comparison).
template <typename S>
struct HeldOut {
  using Matrix = typename Block<S>::Matrix;
  Matrix X, ctx, down_input, out, update, update_gram, o_out, down_out;
  Index seq_len = 0;

  HeldOut(const Block<S>& dense, Matrix tokens, Index seq) : X(std::move(tokens)), seq_len(seq) {
    out = forward(dense, X, seq_len, &ctx, &down_input);
    update = out - X;
    update_gram.noalias() = update * update.transpose();
    o_out.noalias() = ctx * dense.wo.transpose();
    down_out.noalias() = down_input * dense.w_down.transpose();
  }
};

/// How a pruned block compares with the dense one on held-out tokens.
struct Evaluation {
  /// The block's update u = out - x (what it adds to the residual stream), pruned vs dense: relative
  /// error, norm ratio, cosine and token inner-product distortion, as rcpu::OutputComparison defines them.
  rcpu::OutputComparison update;
  double output_error = 0;  ///< ||out' - out|| / ||out||, residual included
  /// o_proj alone on the dense held-out inputs: ||Y' - Y|| / ||Y|| (NaN when the module was left as it is)
  double o_proj_error = std::numeric_limits<double>::quiet_NaN();
  double down_error = std::numeric_limits<double>::quiet_NaN();  ///< down_proj alone, likewise
};

/// rcpu::reference::compare_outputs for outputs with tokens as rows, products in S and sums in double;
/// `gram_Y` = Y Y^T when known.
template <typename S>
rcpu::OutputComparison compare_rows(const typename Block<S>::Matrix& Y, const typename Block<S>::Matrix& Yp,
                                    const typename Block<S>::Matrix* gram_Y = nullptr) {
  using Matrix = typename Block<S>::Matrix;
  rcpu::OutputComparison c;
  const double yy = Y.template cast<double>().squaredNorm(), pp = Yp.template cast<double>().squaredNorm();
  const double yp = Y.template cast<double>().cwiseProduct(Yp.template cast<double>()).sum();
  c.relative_error = (Y.template cast<double>() - Yp.template cast<double>()).norm() / std::sqrt(yy);
  c.norm_ratio = std::sqrt(pp / yy);
  c.cosine = yp / std::sqrt(yy * pp);
  Matrix g;
  if (gram_Y == nullptr) {
    g.noalias() = Y * Y.transpose();
    gram_Y = &g;
  }
  Matrix gp;
  gp.noalias() = Yp * Yp.transpose();
  c.inner_product_distortion =
      (gram_Y->template cast<double>() - gp.template cast<double>()).norm() / gram_Y->template cast<double>().norm();
  return c;
}

namespace detail {

template <typename S>
double layer_error(const typename Block<S>::Matrix& input, const typename Block<S>::Matrix& dense_out,
                   const std::vector<Index>& kept, const typename Block<S>::Matrix& W, const typename Block<S>::Vector& b) {
  typename Block<S>::Matrix Yp;
  Yp.noalias() = input(Eigen::all, kept) * W.transpose();
  if (b.size()) Yp.rowwise() += b.transpose();
  return (Yp.template cast<double>() - dense_out.template cast<double>()).norm() / dense_out.template cast<double>().norm();
}

}  // namespace detail

/// Evaluates a pruned block on held-out tokens. The attention output of the kept heads equals the
/// dense one (heads are independent and their q/k/v rows are untouched), so it is taken from the
/// dense pass; the tests check that this equals a full forward pass of the pruned block.
template <typename S>
Evaluation evaluate(const PrunedBlock<S>& p, const HeldOut<S>& ho) {
  using Matrix = typename Block<S>::Matrix;
  const Matrix ctx = ho.ctx(Eigen::all, p.kept_o_columns);
  const Matrix out = finish_forward(p.block, ho.X, ctx);
  Evaluation e;
  e.update = compare_rows<S>(ho.update, out - ho.X, &ho.update_gram);
  e.output_error = (out.template cast<double>() - ho.out.template cast<double>()).norm() / ho.out.template cast<double>().norm();
  if (p.attention_pruned) e.o_proj_error = detail::layer_error<S>(ho.ctx, ho.o_out, p.kept_o_columns, p.block.wo, p.block.bo);
  if (p.mlp_pruned)
    e.down_error = detail::layer_error<S>(ho.down_input, ho.down_out, p.kept_channels, p.block.w_down, p.block.b_down);
  return e;
}

}  // namespace rcpu_toy

#endif  // RCPU_EXAMPLES_TOY_BLOCK_HPP
