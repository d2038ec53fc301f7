// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_BLOCK_ROTATION_HPP
#define RCPU_MODEL_BLOCK_ROTATION_HPP

/// \file block_rotation.hpp
/// A block-diagonal rotation for the compensation of o_proj ("per-head" rotation, asked for by the
/// RCPU paper's reviewers; METHOD.md section 7), computed from statistics alone.
///
/// Definition. The output channels of the layer (d_out of them) are cut into contiguous blocks of
/// `block` channels (the last block may be shorter), and Q is restricted to
///   Q = blockdiag(Q_1, ..., Q_B),  Q_b orthogonal (block x block).
/// With M = Y Z^T = W G[:,K] W_K^T as for the full rotation, tr(Q^T M) = sum_b tr(Q_b^T M_bb) only
/// involves the diagonal blocks M_bb of M, so each Q_b is the exact Procrustes solution of M_bb and
///   ||Y - Q Z||^2 = ||Y||^2 + ||Z||^2 - 2 sum_b tr(S_b)      (S_b: singular values of M_bb).
/// One block (block >= d_out) is the full rotation; block = 1 gives Q_b = sign(M_bb), i.e. no rotation
/// unless a channel's output correlation is negative.
///
/// Why blocks of the output side and not a rotation per head on the input side: a rotation R_h inside
/// each kept head (W_K -> [W_h R_h]) couples the heads through G and has no closed form; the output-side
/// blocks do, and they cut the degrees of freedom of Q from d(d-1)/2 to about d*block/2, which is what
/// a per-head rotation is for (a smaller, more local correction that needs fewer calibration tokens).
/// For o_proj of a LLaMA model d_out = n_heads * head_dim, so block = head_dim gives n_heads blocks.
/// The residual stream's channels carry no head structure, so the blocks are a restriction of capacity,
/// not a semantic grouping; docs/results.md measures what it does.
///
/// This belongs next to compensate() in rcpu/compensation.hpp eventually; it lives here, on the public
/// API (Statistics, Procrustes, report types), until that header can take it.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/LU>

#include "../compensation.hpp"
#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "../procrustes.hpp"
#include "../report.hpp"
#include "../selection.hpp"
#include "../statistics.hpp"

namespace rcpu {
namespace model {

/// The block-diagonal solution of max tr(Q^T M) over Q = blockdiag(Q_1..Q_B).
struct BlockRotation {
  Eigen::MatrixXd q;         ///< d x d, block-diagonal, orthogonal
  double trace = 0.0;        ///< sum_b tr(Q_b^T M_bb): the optimum
  Index blocks = 0;          ///< B
  Index rank = 0;            ///< sum of the numerical ranks of the M_bb
  double condition = 0.0;    ///< largest condition number sigma_max / sigma_min over the blocks
  bool reflection_fixed = false;  ///< some block had its last singular pair flipped (proper_rotation)
  Info info = Info::success;
};

/// Solves max tr(Q^T M) over block-diagonal orthogonal Q with blocks of `block` rows/columns.
/// \param M      square, finite (d x d)
/// \param block  block size >= 1 (the last block holds the remainder of d)
/// \param options SVD route and det fix, applied to every block
/// \throws rcpu::invalid_argument if M is not square or finite, or block < 1.
inline BlockRotation block_procrustes(const Eigen::MatrixXd& M, Index block, const ProcrustesOptions& options = {}) {
  rcpu::detail::require(M.rows() >= 1 && M.rows() == M.cols(),
                  "block_procrustes: M is " + rcpu::detail::shape(M) + ", expected a non-empty square matrix");
  rcpu::detail::require(block >= 1, "block_procrustes: block = " + std::to_string(block) + " must be >= 1");
  rcpu::detail::require_finite(M, "block_procrustes: M");
  const Index d = M.rows();
  BlockRotation out;
  out.q = Eigen::MatrixXd::Zero(d, d);
  for (Index b0 = 0; b0 < d; b0 += block) {
    const Index nb = std::min(block, d - b0);
    const Procrustes<double> p(M.block(b0, b0, nb, nb), options);
    if (p.info() != Info::success) {
      out.info = p.info();
      return out;
    }
    out.q.block(b0, b0, nb, nb) = p.rotation();
    out.trace += p.trace();
    out.rank += p.rank();
    out.condition = std::max(out.condition, p.condition());
    out.reflection_fixed = out.reflection_fixed || p.reflection_fixed();
    ++out.blocks;
  }
  return out;
}

namespace detail {

// Everything the report needs about (W, b, G) and the kept set, in double.
struct GramSystem {
  Eigen::MatrixXd W, WK, A, GKK;  // A = W G[:,K]
  Eigen::VectorXd b, s, sK, mu, muK, Ws;
  double n = 0, yy = 0;  // yy = ||W X + b 1^T||^2

  template <typename DerivedW, typename S, typename Acc>
  GramSystem(const Eigen::MatrixBase<DerivedW>& W_, const Eigen::VectorXd& b_, const Statistics<S, Acc>& st,
             const std::vector<Index>& K) {
    W = W_.template cast<double>();
    b = b_.size() ? b_ : Eigen::VectorXd::Zero(W.rows());
    const Eigen::MatrixXd G = st.gram().template cast<double>();
    n = double(st.tokens());
    s = st.sum().template cast<double>();
    mu = st.mean().template cast<double>();
    sK = s(K);
    muK = mu(K);
    WK = W(Eigen::all, K);
    GKK = G(K, K);
    const Eigen::MatrixXd WG = W * G;
    A = WG(Eigen::all, K);
    Ws = W * s;
    yy = WG.cwiseProduct(W).sum() + 2.0 * b.dot(Ws) + n * b.squaredNorm();
  }

  // Output comparison of a replacement (Wc over the kept columns, bias bc) with the dense layer.
  OutputComparison compare(const Eigen::MatrixXd& Wc, const Eigen::VectorXd& bc) const {
    const Eigen::VectorXd Wcs = Wc * sK;
    const double pp = (Wc * GKK).cwiseProduct(Wc).sum() + 2.0 * bc.dot(Wcs) + n * bc.squaredNorm();
    const double cross = Wc.cwiseProduct(A).sum() + bc.dot(Ws) + b.dot(Wcs) + n * b.dot(bc);
    OutputComparison c;
    c.relative_error = std::sqrt(std::max(0.0, yy + pp - 2.0 * cross) / yy);
    c.norm_ratio = std::sqrt(pp / yy);
    c.cosine = cross / std::sqrt(yy * pp);
    return c;
  }
};

}  // namespace detail

/// Compensates y = W x + b pruned to the input columns `kept` with a block-diagonal rotation (see the
/// file comment), from statistics with a full Gram.
/// \param W       weights, d_out x d_in
/// \param bias    d_out, or empty for a layer without bias
/// \param stats   statistics of the layer's input (GramMode::full)
/// \param kept    kept input columns (any order; the result's columns follow it)
/// \param block   output channels per block (>= 1; >= d_out is the full rotation)
/// \param method  rotation, rotation_scale (one scale s = tr(Q^T M) / ||Z||^2 for the whole layer) or
///                rotation_bias (then b' = b + W mu - W' mu_K)
/// \return weight, bias, the block-diagonal Q, the scale, and the report on the calibration statistics
///         (rank_m and condition_m: sum of block ranks, largest block condition number).
/// \throws rcpu::invalid_argument on bad shapes, a non-rotation method, an invalid kept set, or
///         statistics without tokens or Gram.
template <typename DerivedW, typename S, typename Acc>
Compensated<double> compensate_block_rotation(const Eigen::MatrixBase<DerivedW>& W, const Eigen::VectorXd& bias,
                                              const Statistics<S, Acc>& stats, const std::vector<Index>& kept,
                                              Index block, Compensation method,
                                              const CompensationOptions& options = {}) {
  rcpu::detail::require(W.rows() >= 1 && W.cols() >= 1 && stats.channels() == W.cols(),
                        "compensate_block_rotation: W is " + rcpu::detail::shape(W) + " but stats has " +
                            std::to_string(stats.channels()) + " channels (need W.cols())");
  rcpu::detail::require(bias.size() == 0 || bias.size() == W.rows(),
                        "compensate_block_rotation: bias has " + std::to_string(bias.size()) +
                            " entries, expected 0 or d_out = " + std::to_string(W.rows()));
  rcpu::detail::require(method == Compensation::rotation || method == Compensation::rotation_scale ||
                            method == Compensation::rotation_bias,
                        std::string("compensate_block_rotation: method '") + to_string(method) +
                            "' is not a rotation (rotation, rotation_scale, rotation_bias)");
  rcpu::detail::require(block >= 1, "compensate_block_rotation: block = " + std::to_string(block) + " must be >= 1");
  rcpu::detail::require(stats.tokens() > 0 && stats.has_gram(),
                        "compensate_block_rotation: the statistics need tokens and a full Gram");
  rcpu::detail::require_kept_set(kept, W.cols(), "compensate_block_rotation: kept");
  rcpu::detail::require_finite(W, "compensate_block_rotation: W");

  const detail::GramSystem sys(W, bias, stats, kept);
  const Eigen::MatrixXd M = sys.A * sys.WK.transpose();
  const BlockRotation br = block_procrustes(M, block, options.procrustes);

  Compensated<double> out;
  LayerReport& rep = out.report;
  rep.tokens = stats.tokens();
  rep.rows = W.rows();
  rep.columns = W.cols();
  rep.kept_columns = Index(kept.size());
  rep.info = br.info;
  if (bias.size()) out.bias = bias;
  out.weight = sys.WK;
  if (br.info != Info::success) return out;
  if (method == Compensation::rotation_scale) {
    const double zz = (sys.WK * sys.GKK).cwiseProduct(sys.WK).sum() + options.scale_epsilon;
    rcpu::detail::require(std::isfinite(zz) && zz > 0, "compensate_block_rotation: ||Z||^2 + epsilon = " +
                                                          std::to_string(zz) + " must be positive and finite");
    out.scale = br.trace / zz;
  }
  out.weight = out.scale * (br.q * sys.WK);
  if (method == Compensation::rotation_bias) out.bias = sys.b + sys.W * sys.mu - out.weight * sys.muK;
  out.rotation = br.q;
  rep.scale = out.scale;
  rep.rank_m = br.rank;
  rep.condition_m = br.condition;
  rep.reflection_fixed = br.reflection_fixed;
  const Eigen::VectorXd b_after = out.bias.size() ? out.bias : sys.b;
  rep.before = sys.compare(sys.WK, sys.b);
  rep.after = sys.compare(out.weight, b_after);
  return out;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_BLOCK_ROTATION_HPP
