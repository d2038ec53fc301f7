// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_LLAMA_HPP
#define RCPU_MODEL_LLAMA_HPP

/// \file llama.hpp
/// The LLaMA decoder in Eigen (float): token embeddings, RMSNorm, rotary embeddings, grouped-query
/// causal attention, SwiGLU MLP, tied or separate output head. Batched over windows: a hidden-state
/// matrix holds `n_windows * seq_len` rows (tokens) of consecutive equal-length windows, each window an
/// independent sequence with positions 0..seq_len-1, and every linear layer is one matrix product
/// `(tokens x d_in) * W^T` over all of them.
///
/// Weights follow the PyTorch convention (`W` is `d_out x d_in`, `y = W x`). Each layer is a
/// LlamaLayer value that a pruning pipeline can inspect and replace: it may keep any subset of query
/// heads (each remembers its KV head, so any number of query heads per KV group works) and any subset of
/// MLP channels, and may carry output biases on o_proj and down_proj (for bias compensation).
/// ForwardTaps expose the inputs of o_proj and down_proj of every layer, e.g. to an rcpu::Statistics.
///
/// Rotary embeddings use the convention GGUF's LLaMA weights are stored for: rotation of the adjacent
/// pairs (x[2i], x[2i+1]) of each head by pos * base^(-2i/n_rot) (llama.cpp's "normal" mode; the
/// converter permuted the rows of q and k from Hugging Face's rotate-half layout to this one).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../detail/blas.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "../statistics.hpp"

namespace rcpu {
namespace model {

/// Hyper-parameters of a dense LLaMA model.
struct LlamaConfig {
  Index n_layers = 0;
  Index d_model = 0;
  Index n_heads = 0;     ///< query heads
  Index n_kv_heads = 0;  ///< key/value heads (n_heads for plain multi-head attention)
  Index head_dim = 0;
  Index ffn = 0;         ///< MLP width
  Index vocab = 0;
  Index context = 0;     ///< trained context length (informational)
  Index n_rot = 0;       ///< rotated dimensions per head (even, <= head_dim)
  float rms_eps = 1e-5f;
  double rope_base = 10000.0;
  bool tied_output = false;  ///< output head shares the token embedding
};

/// One decoder layer. Sizes may differ from the dense config after pruning.
struct LlamaLayer {
  Index head_dim = 0;
  Eigen::VectorXf attn_norm;  ///< d
  Eigen::MatrixXf wq;         ///< (n_heads * head_dim) x d
  Eigen::MatrixXf wk;         ///< (n_kv_heads * head_dim) x d
  Eigen::MatrixXf wv;         ///< (n_kv_heads * head_dim) x d
  Eigen::MatrixXf wo;         ///< d x (n_heads * head_dim)
  Eigen::VectorXf bo;         ///< d, or empty for no bias
  Eigen::VectorXf ffn_norm;   ///< d
  Eigen::MatrixXf w_gate;     ///< ffn x d
  Eigen::MatrixXf w_up;       ///< ffn x d
  Eigen::MatrixXf w_down;     ///< d x ffn
  Eigen::VectorXf b_down;     ///< d, or empty for no bias
  std::vector<Index> head_kv;      ///< per query head: its KV head (row block of wk / wv)
  std::vector<Index> head_ids;     ///< per query head: its index in the dense model
  std::vector<Index> channel_ids;  ///< per MLP channel: its index in the dense model

  Index n_heads() const { return static_cast<Index>(head_kv.size()); }
  Index n_kv_heads() const { return head_dim > 0 ? wk.rows() / head_dim : 0; }
  Index ffn() const { return w_down.cols(); }
  Index d_model() const { return wo.rows(); }

  /// Checks that every shape agrees with the others. \throws rcpu::invalid_argument naming the mismatch.
  void validate(Index d, const std::string& name = "layer") const {
    const auto need = [&](bool ok, const std::string& what) {
      rcpu::detail::require(ok, name + ": " + what);
    };
    const Index h = n_heads(), hd = head_dim, f = w_gate.rows();
    need(hd > 0, "head_dim = " + std::to_string(hd) + " must be > 0");
    need(h > 0, "has no query heads");
    need(attn_norm.size() == d && ffn_norm.size() == d,
         "norm weights have " + std::to_string(attn_norm.size()) + " and " + std::to_string(ffn_norm.size()) +
             " entries, expected d = " + std::to_string(d));
    need(wq.rows() == h * hd && wq.cols() == d,
         "wq is " + rcpu::detail::shape(wq) + ", expected " + rcpu::detail::shape(h * hd, d));
    need(wk.rows() % hd == 0 && wk.rows() > 0 && wk.cols() == d,
         "wk is " + rcpu::detail::shape(wk) + ", expected (n_kv_heads*" + std::to_string(hd) + ")x" + std::to_string(d));
    need(wv.rows() == wk.rows() && wv.cols() == d, "wv is " + rcpu::detail::shape(wv) + ", expected " + rcpu::detail::shape(wk));
    need(wo.rows() == d && wo.cols() == h * hd, "wo is " + rcpu::detail::shape(wo) + ", expected " + rcpu::detail::shape(d, h * hd));
    need(bo.size() == 0 || bo.size() == d, "bo has " + std::to_string(bo.size()) + " entries, expected 0 or d");
    need(f > 0, "has no MLP channels");
    need(w_up.rows() == f && w_up.cols() == d && w_gate.cols() == d,
         "w_gate is " + rcpu::detail::shape(w_gate) + " and w_up is " + rcpu::detail::shape(w_up) + ", expected ffn x d");
    need(w_down.rows() == d && w_down.cols() == f,
         "w_down is " + rcpu::detail::shape(w_down) + ", expected " + rcpu::detail::shape(d, f));
    need(b_down.size() == 0 || b_down.size() == d,
         "b_down has " + std::to_string(b_down.size()) + " entries, expected 0 or d");
    const Index nkv = n_kv_heads();
    for (std::size_t i = 0; i < head_kv.size(); ++i)
      need(head_kv[i] >= 0 && head_kv[i] < nkv, "head_kv[" + std::to_string(i) + "] = " + std::to_string(head_kv[i]) +
                                                     " is outside [0, " + std::to_string(nkv) + ")");
    need(head_ids.empty() || head_ids.size() == head_kv.size(), "head_ids and head_kv differ in length");
    need(channel_ids.empty() || static_cast<Index>(channel_ids.size()) == f, "channel_ids has the wrong length");
  }

  /// Keeps the query heads at positions `kept` (current numbering, any order, no repeats): cuts their
  /// rows of wq and columns of wo. With `drop_unused_kv`, KV heads that no kept head uses are removed
  /// from wk and wv and head_kv is renumbered. wo keeps the dense values of the kept columns; a
  /// compensation then assigns its own `wo`.
  void keep_heads(const std::vector<Index>& kept, bool drop_unused_kv = true) {
    rcpu::detail::require_kept_set(kept, n_heads(), "LlamaLayer::keep_heads: kept");
    const Index hd = head_dim, k = static_cast<Index>(kept.size());
    Eigen::MatrixXf q(k * hd, wq.cols()), o(wo.rows(), k * hd);
    std::vector<Index> kv(kept.size()), ids(kept.size());
    for (Index i = 0; i < k; ++i) {
      const Index h = kept[static_cast<std::size_t>(i)];
      q.middleRows(i * hd, hd) = wq.middleRows(h * hd, hd);
      o.middleCols(i * hd, hd) = wo.middleCols(h * hd, hd);
      kv[static_cast<std::size_t>(i)] = head_kv[static_cast<std::size_t>(h)];
      ids[static_cast<std::size_t>(i)] = head_ids.empty() ? h : head_ids[static_cast<std::size_t>(h)];
    }
    wq = std::move(q);
    wo = std::move(o);
    head_kv = std::move(kv);
    head_ids = std::move(ids);
    if (drop_unused_kv) {
      const Index nkv = n_kv_heads();
      std::vector<Index> remap(static_cast<std::size_t>(nkv), -1);
      Index used = 0;
      for (const Index g : head_kv)
        if (remap[static_cast<std::size_t>(g)] < 0) remap[static_cast<std::size_t>(g)] = -2;
      for (Index g = 0; g < nkv; ++g)
        if (remap[static_cast<std::size_t>(g)] == -2) remap[static_cast<std::size_t>(g)] = used++;
      if (used < nkv) {
        Eigen::MatrixXf nk(used * hd, wk.cols()), nv(used * hd, wv.cols());
        for (Index g = 0; g < nkv; ++g) {
          const Index r = remap[static_cast<std::size_t>(g)];
          if (r < 0) continue;
          nk.middleRows(r * hd, hd) = wk.middleRows(g * hd, hd);
          nv.middleRows(r * hd, hd) = wv.middleRows(g * hd, hd);
        }
        wk = std::move(nk);
        wv = std::move(nv);
        for (Index& g : head_kv) g = remap[static_cast<std::size_t>(g)];
      }
    }
  }

  /// Keeps the MLP channels at positions `kept` (current numbering, any order, no repeats): rows of
  /// w_gate and w_up, columns of w_down.
  void keep_channels(const std::vector<Index>& kept) {
    rcpu::detail::require_kept_set(kept, ffn(), "LlamaLayer::keep_channels: kept");
    const Index k = static_cast<Index>(kept.size());
    Eigen::MatrixXf g(k, w_gate.cols()), u(k, w_up.cols()), dn(w_down.rows(), k);
    std::vector<Index> ids(kept.size());
    for (Index i = 0; i < k; ++i) {
      const Index c = kept[static_cast<std::size_t>(i)];
      g.row(i) = w_gate.row(c);
      u.row(i) = w_up.row(c);
      dn.col(i) = w_down.col(c);
      ids[static_cast<std::size_t>(i)] = channel_ids.empty() ? c : channel_ids[static_cast<std::size_t>(c)];
    }
    w_gate = std::move(g);
    w_up = std::move(u);
    w_down = std::move(dn);
    channel_ids = std::move(ids);
  }
};

/// Callbacks that see the inputs of o_proj (tokens x n_heads*head_dim) and of down_proj
/// (tokens x ffn) of each layer during a forward pass. Either may be empty.
namespace detail {

// The forward pass's products go through rcpu's GEMM, so that they run on OpenBLAS or on Eigen's
// kernels, whichever is right for this CPU (rcpu/kernels.hpp).
using rcpu::detail::Op;
// x W^T: a linear layer on token rows.
inline Eigen::MatrixXf linear(const Eigen::MatrixXf& x, const Eigen::MatrixXf& w) {
  Eigen::MatrixXf y(x.rows(), w.rows());
  rcpu::detail::gemm<float>(Op::none, Op::transpose, 1.0f, x, w, 0.0f, y);
  return y;
}
// y += x W^T.
inline void add_linear(Eigen::MatrixXf& y, const Eigen::MatrixXf& x, const Eigen::MatrixXf& w) {
  rcpu::detail::gemm<float>(Op::none, Op::transpose, 1.0f, x, w, 1.0f, y);
}
// RMSNorm of token rows. The one definition every pass uses, so that passes agree bit for bit.
inline Eigen::MatrixXf rms_norm(const Eigen::MatrixXf& h, const Eigen::VectorXf& w, float eps) {
  const Eigen::ArrayXf inv = (h.array().square().rowwise().sum() / static_cast<float>(h.cols()) + eps).rsqrt();
  return (h.array().colwise() * inv).rowwise() * w.transpose().array();
}

}  // namespace detail

/// Several sequences packed into one window so that a prefix they share is computed once (zero-shot
/// scoring: one context, several continuations). Per row of the hidden states (n_windows * seq_len
/// entries each): `position` is the row's rotary position, and `branch` says what it sees: row i
/// attends to the rows j <= i of its window with branch[j] == 0 (the shared prefix) or branch[j] ==
/// branch[i]. With the prefix rows first (branch 0, positions 0..P-1) and each continuation after it
/// (its own branch, positions P, P+1, ...), every row computes exactly what it would in its own
/// unpacked sequence. Rows after the last real one (padding) may hold anything: no earlier row sees them.
struct PackedLayout {
  std::vector<std::int32_t> position;
  std::vector<std::int32_t> branch;
};

struct ForwardTaps {
  std::function<void(Index layer, const Eigen::MatrixXf& input)> o_proj_input;
  std::function<void(Index layer, const Eigen::MatrixXf& input)> down_proj_input;
};

/// Taps that add the o_proj and down_proj inputs of layer `layer` to two accumulators (either may be
/// null). The accumulators must have n_heads*head_dim and ffn channels.
template <typename AccScalar>
ForwardTaps statistics_taps(Index layer, Statistics<float, AccScalar>* o_proj, Statistics<float, AccScalar>* down_proj) {
  ForwardTaps taps;
  if (o_proj != nullptr)
    taps.o_proj_input = [layer, o_proj](Index l, const Eigen::MatrixXf& x) {
      if (l == layer) o_proj->update(x);
    };
  if (down_proj != nullptr)
    taps.down_proj_input = [layer, down_proj](Index l, const Eigen::MatrixXf& x) {
      if (l == layer) down_proj->update(x);
    };
  return taps;
}

namespace detail {
// Parameters of everything but the layers (embedding, output head unless tied, final norm).
inline Index outer_parameters(const LlamaConfig& c) { return c.vocab * c.d_model * (c.tied_output ? 1 : 2) + c.d_model; }
}  // namespace detail

/// A LLaMA-architecture language model.
class LlamaModel {
 public:
  LlamaModel() = default;

  /// Builds a model from its parts. `output` may be empty for a head tied to `embedding` (vocab x d).
  /// \throws rcpu::invalid_argument on any shape that disagrees with `config`.
  static LlamaModel from_weights(const LlamaConfig& config, Eigen::MatrixXf embedding, std::vector<LlamaLayer> layers,
                                 Eigen::VectorXf output_norm, Eigen::MatrixXf output = Eigen::MatrixXf()) {
    LlamaModel m;
    m.m_config = config;
    m.m_config.tied_output = output.size() == 0;
    m.m_embedding = std::move(embedding);
    m.m_layers = std::move(layers);
    m.m_output_norm = std::move(output_norm);
    m.m_output = std::move(output);
    m.validate();
    return m;
  }

  /// Loads a GGUF file of architecture "llama", or "deci" (what rcpu exports when pruned layers
  /// differ: head_count, head_count_kv and feed_forward_length may be per-layer arrays), with the
  /// optional output biases blk.N.attn_output.bias and blk.N.ffn_down.bias. Any tensor type that
  /// io::dequantize reads. The config holds the largest per-layer sizes. (LlamaGgufReader reads the
  /// same file one layer at a time.)
  /// \throws rcpu::invalid_argument for another architecture, missing keys or tensors, or bad shapes.
  static LlamaModel from_gguf(const io::GgufFile& file);

  /// Fills head_kv (query head h uses KV head h / (n_heads / n_kv_heads)), head_ids and channel_ids
  /// of a dense layer.
  static void dense_bookkeeping(LlamaLayer& L, const LlamaConfig& c) {
    const Index group = c.n_heads / c.n_kv_heads;
    L.head_kv.resize(static_cast<std::size_t>(c.n_heads));
    L.head_ids.resize(static_cast<std::size_t>(c.n_heads));
    for (Index h = 0; h < c.n_heads; ++h) {
      L.head_kv[static_cast<std::size_t>(h)] = h / group;
      L.head_ids[static_cast<std::size_t>(h)] = h;
    }
    L.channel_ids.resize(static_cast<std::size_t>(c.ffn));
    for (Index j = 0; j < c.ffn; ++j) L.channel_ids[static_cast<std::size_t>(j)] = j;
  }

  const LlamaConfig& config() const { return m_config; }
  Index n_layers() const { return static_cast<Index>(m_layers.size()); }
  LlamaLayer& layer(Index l) { return m_layers.at(static_cast<std::size_t>(l)); }
  const LlamaLayer& layer(Index l) const { return m_layers.at(static_cast<std::size_t>(l)); }
  std::vector<LlamaLayer>& layers() { return m_layers; }
  const std::vector<LlamaLayer>& layers() const { return m_layers; }
  /// Token embedding, vocab x d.
  const Eigen::MatrixXf& embedding() const { return m_embedding; }
  /// Output head, vocab x d (the embedding when tied).
  const Eigen::MatrixXf& output_weight() const { return m_config.tied_output ? m_embedding : m_output; }
  const Eigen::VectorXf& output_norm() const { return m_output_norm; }
  /// Parameters in the current (possibly pruned) model, the output head counted once when tied.
  Index parameter_count() const {
    Index n = m_embedding.size() + m_output.size() + m_output_norm.size();
    for (const LlamaLayer& L : m_layers)
      n += L.attn_norm.size() + L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() + L.bo.size() +
           L.ffn_norm.size() + L.w_gate.size() + L.w_up.size() + L.w_down.size() + L.b_down.size();
    return n;
  }

  /// Checks every shape. \throws rcpu::invalid_argument naming the first mismatch.
  void validate() const {
    const LlamaConfig& c = m_config;
    rcpu::detail::require(c.d_model > 0 && c.vocab > 0, "LlamaModel: d_model and vocab must be > 0");
    rcpu::detail::require(c.head_dim > 0 && c.n_rot >= 0 && c.n_rot <= c.head_dim && c.n_rot % 2 == 0,
                    "LlamaModel: n_rot = " + std::to_string(c.n_rot) + " must be even and in [0, head_dim = " +
                        std::to_string(c.head_dim) + "]");
    rcpu::detail::require(m_embedding.rows() == c.vocab && m_embedding.cols() == c.d_model,
                    "LlamaModel: embedding is " + rcpu::detail::shape(m_embedding) + ", expected " +
                        rcpu::detail::shape(c.vocab, c.d_model));
    rcpu::detail::require(c.tied_output || (m_output.rows() == c.vocab && m_output.cols() == c.d_model),
                    "LlamaModel: output is " + rcpu::detail::shape(m_output) + ", expected " + rcpu::detail::shape(c.vocab, c.d_model));
    rcpu::detail::require(m_output_norm.size() == c.d_model, "LlamaModel: output_norm has " +
                                                           std::to_string(m_output_norm.size()) + " entries, expected " +
                                                           std::to_string(c.d_model));
    rcpu::detail::require(static_cast<Index>(m_layers.size()) == c.n_layers,
                    "LlamaModel: " + std::to_string(m_layers.size()) + " layers, config says " + std::to_string(c.n_layers));
    for (Index l = 0; l < n_layers(); ++l) {
      const LlamaLayer& L = m_layers[static_cast<std::size_t>(l)];
      L.validate(c.d_model, "LlamaModel: layer " + std::to_string(l));
      rcpu::detail::require(L.head_dim == c.head_dim, "LlamaModel: layer " + std::to_string(l) + " has head_dim " +
                                                    std::to_string(L.head_dim) + ", config says " +
                                                    std::to_string(c.head_dim));
    }
  }

  /// Hidden states of `n` token ids (rows = tokens, n x d).
  Eigen::MatrixXf embed(const std::int32_t* ids, Index n) const {
    Eigen::MatrixXf h(n, m_config.d_model);
    for (Index t = 0; t < n; ++t) {
      const std::int32_t id = ids[t];
      rcpu::detail::require(id >= 0 && id < m_config.vocab, "LlamaModel::embed: token " + std::to_string(id) + " at " +
                                                          std::to_string(t) + " is outside [0, " +
                                                          std::to_string(m_config.vocab) + ")");
      h.row(t) = m_embedding.row(id);
    }
    return h;
  }
  Eigen::MatrixXf embed(const std::vector<std::int32_t>& ids) const {
    return embed(ids.data(), static_cast<Index>(ids.size()));
  }

  /// Runs decoder layer `l` in place on `hidden` (rows = tokens: consecutive windows of `seq_len`).
  /// \throws rcpu::invalid_argument if the rows are not a multiple of seq_len or the width is not d.
  /// With `packed`, the windows pack several sequences each (PackedLayout).
  void forward_layer(Index l, Eigen::MatrixXf& hidden, Index seq_len, const ForwardTaps* taps = nullptr,
                     const PackedLayout* packed = nullptr) const {
    rcpu::detail::require(l >= 0 && l < n_layers(), "LlamaModel::forward_layer: layer " + std::to_string(l) +
                                                  " is outside [0, " + std::to_string(n_layers()) + ")");
    forward_layer(m_config, m_layers[static_cast<std::size_t>(l)], l, hidden, seq_len, taps, packed);
  }

  /// The same for a layer that lives outside a model (a pipeline that loads one layer at a time):
  /// layer `L` of a model with `config`, reported to `taps` as layer `l`.
  static void forward_layer(const LlamaConfig& config, const LlamaLayer& L, Index l, Eigen::MatrixXf& hidden,
                            Index seq_len, const ForwardTaps* taps = nullptr, const PackedLayout* packed = nullptr) {
    check_hidden(config, hidden, seq_len, "forward_layer");
    if (packed != nullptr) check_packed(*packed, hidden.rows(), "forward_layer");
    const Index hd = L.head_dim;

    Eigen::MatrixXf x = detail::rms_norm(hidden, L.attn_norm, config.rms_eps);
    Eigen::MatrixXf q = detail::linear(x, L.wq);
    Eigen::MatrixXf k = detail::linear(x, L.wk);
    Eigen::MatrixXf v = detail::linear(x, L.wv);
    if (packed == nullptr) {
      const RopeTable rope = rope_table(config, seq_len);
      apply_rope(config, q, L.n_heads(), hd, seq_len, rope);
      apply_rope(config, k, L.n_kv_heads(), hd, seq_len, rope);
    } else {
      const Index max_pos = *std::max_element(packed->position.begin(), packed->position.end());
      const RopeTable rope = rope_table(config, max_pos + 1);
      apply_rope_at(config, q, L.n_heads(), hd, packed->position, rope);
      apply_rope_at(config, k, L.n_kv_heads(), hd, packed->position, rope);
    }
    Eigen::MatrixXf attn(hidden.rows(), L.n_heads() * hd);
    attention(q, k, v, L, seq_len, attn, packed != nullptr ? &packed->branch : nullptr);
    if (taps != nullptr && taps->o_proj_input) taps->o_proj_input(l, attn);
    detail::add_linear(hidden, attn, L.wo);
    if (L.bo.size() != 0) hidden.rowwise() += L.bo.transpose();

    x = detail::rms_norm(hidden, L.ffn_norm, config.rms_eps);
    Eigen::MatrixXf gate = detail::linear(x, L.w_gate);
    const Eigen::MatrixXf up = detail::linear(x, L.w_up);
    // SwiGLU: silu(g) * u, silu(g) = g / (1 + exp(-g)).
    gate.array() = gate.array() / (1.0f + (-gate.array()).exp()) * up.array();
    if (taps != nullptr && taps->down_proj_input) taps->down_proj_input(l, gate);
    detail::add_linear(hidden, gate, L.w_down);
    if (L.b_down.size() != 0) hidden.rowwise() += L.b_down.transpose();
  }

  /// Embeds `ids` and runs every layer (no final norm). `ids.size()` must be a multiple of seq_len.
  /// With `packed`, the windows pack several sequences each (PackedLayout).
  Eigen::MatrixXf forward_hidden(const std::vector<std::int32_t>& ids, Index seq_len,
                                 const ForwardTaps* taps = nullptr, const PackedLayout* packed = nullptr) const {
    Eigen::MatrixXf h = embed(ids);
    check_hidden(m_config, h, seq_len, "forward_hidden");
    if (packed != nullptr) check_packed(*packed, h.rows(), "forward_hidden");
    for (Index l = 0; l < n_layers(); ++l) forward_layer(l, h, seq_len, taps, packed);
    return h;
  }

  /// Final RMSNorm of the hidden states (tokens x d).
  Eigen::MatrixXf final_norm(const Eigen::MatrixXf& hidden) const {
    return detail::rms_norm(hidden, m_output_norm, m_config.rms_eps);
  }

  /// Logits (tokens x vocab) of hidden states from forward_hidden().
  Eigen::MatrixXf logits_from_hidden(const Eigen::MatrixXf& hidden) const {
    rcpu::detail::require(hidden.cols() == m_config.d_model,
                    "LlamaModel::logits_from_hidden: hidden is " + rcpu::detail::shape(hidden) + ", expected Nx" +
                        std::to_string(m_config.d_model));
    return detail::linear(final_norm(hidden), output_weight());
  }

  /// Logits (tokens x vocab) of windows of `seq_len` tokens.
  Eigen::MatrixXf logits(const std::vector<std::int32_t>& ids, Index seq_len) const {
    return logits_from_hidden(forward_hidden(ids, seq_len));
  }

 private:
  struct RopeTable {
    Eigen::MatrixXf cos, sin;  // seq_len x n_rot/2
  };

  static void check_hidden(const LlamaConfig& c, const Eigen::MatrixXf& h, Index seq_len, const char* who) {
    rcpu::detail::require(seq_len > 0, std::string("LlamaModel::") + who + ": seq_len = " + std::to_string(seq_len) +
                                     " must be > 0");
    rcpu::detail::require(h.cols() == c.d_model && h.rows() % seq_len == 0,
                    std::string("LlamaModel::") + who + ": hidden is " + rcpu::detail::shape(h) + ", expected (n_windows*" +
                        std::to_string(seq_len) + ")x" + std::to_string(c.d_model));
  }

  static void check_packed(const PackedLayout& p, Index rows, const char* who) {
    rcpu::detail::require(static_cast<Index>(p.position.size()) == rows && static_cast<Index>(p.branch.size()) == rows,
                          std::string("LlamaModel::") + who + ": the packed layout has " +
                              std::to_string(p.position.size()) + " positions and " + std::to_string(p.branch.size()) +
                              " branches for " + std::to_string(rows) + " rows");
    for (const std::int32_t pos : p.position)
      rcpu::detail::require(pos >= 0, std::string("LlamaModel::") + who + ": negative position " + std::to_string(pos) +
                                          " in the packed layout");
  }

  static RopeTable rope_table(const LlamaConfig& c, Index seq_len) {
    const Index half = c.n_rot / 2;
    RopeTable t{Eigen::MatrixXf(seq_len, half), Eigen::MatrixXf(seq_len, half)};
    for (Index i = 0; i < half; ++i) {
      // Angles in double: exact enough that float rounding of cos/sin is the only error left.
      const double inv_freq = std::pow(c.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(c.n_rot));
      for (Index p = 0; p < seq_len; ++p) {
        const double a = static_cast<double>(p) * inv_freq;
        t.cos(p, i) = static_cast<float>(std::cos(a));
        t.sin(p, i) = static_cast<float>(std::sin(a));
      }
    }
    return t;
  }

  // Rotates the pairs (2i, 2i+1), i < n_rot/2, of each head's columns; position = row within its window.
  static void apply_rope(const LlamaConfig& c, Eigen::MatrixXf& m, Index heads, Index hd, Index seq_len,
                         const RopeTable& rope) {
    const Index half = c.n_rot / 2, windows = m.rows() / seq_len;
    Eigen::ArrayXf a(seq_len);
    for (Index h = 0; h < heads; ++h)
      for (Index i = 0; i < half; ++i) {
        const Index c0 = h * hd + 2 * i;
        const auto cs = rope.cos.col(i).array();
        const auto sn = rope.sin.col(i).array();
        for (Index w = 0; w < windows; ++w) {
          auto x0 = m.col(c0).segment(w * seq_len, seq_len).array();
          auto x1 = m.col(c0 + 1).segment(w * seq_len, seq_len).array();
          a = x0;
          x0 = a * cs - x1 * sn;
          x1 = a * sn + x1 * cs;
        }
      }
  }

  // As apply_rope, each row at its own position (a PackedLayout's).
  static void apply_rope_at(const LlamaConfig& c, Eigen::MatrixXf& m, Index heads, Index hd,
                            const std::vector<std::int32_t>& position, const RopeTable& rope) {
    const Index half = c.n_rot / 2, rows = m.rows();
    for (Index h = 0; h < heads; ++h)
      for (Index i = 0; i < half; ++i) {
        const Index c0 = h * hd + 2 * i;
        for (Index r = 0; r < rows; ++r) {
          const Index p = position[static_cast<std::size_t>(r)];
          const float cs = rope.cos(p, i), sn = rope.sin(p, i);
          const float x0 = m(r, c0), x1 = m(r, c0 + 1);
          m(r, c0) = x0 * cs - x1 * sn;
          m(r, c0 + 1) = x0 * sn + x1 * cs;
        }
      }
  }

  // Causal softmax attention per window and query head, each head reading its own KV head. With
  // `branch` (a PackedLayout's), a query also skips the keys of other branches than its own and 0.
  static void attention(const Eigen::MatrixXf& q, const Eigen::MatrixXf& k, const Eigen::MatrixXf& v,
                        const LlamaLayer& L, Index seq_len, Eigen::MatrixXf& out,
                        const std::vector<std::int32_t>* branch = nullptr) {
    const Index hd = L.head_dim, windows = q.rows() / seq_len, T = seq_len;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    Eigen::MatrixXf s(T, T);  // column j: scores of query j against keys 0..T-1
    for (Index w = 0; w < windows; ++w)
      for (Index h = 0; h < L.n_heads(); ++h) {
        const Index g = L.head_kv[static_cast<std::size_t>(h)];
        const auto qh = q.block(w * T, h * hd, T, hd);
        const auto kh = k.block(w * T, g * hd, T, hd);
        const auto vh = v.block(w * T, g * hd, T, hd);
        rcpu::detail::gemm<float>(detail::Op::none, detail::Op::transpose, 1.0f, kh, qh, 0.0f, s);
        for (Index j = 0; j < T; ++j) {
          auto col = s.col(j).head(j + 1).array();
          col *= scale;
          if (branch != nullptr) {
            const std::int32_t* b = branch->data() + w * T;
            for (Index i = 0; i < j; ++i)
              if (b[i] != 0 && b[i] != b[j]) col(i) = -std::numeric_limits<float>::infinity();
          }
          const float mx = col.maxCoeff();
          col = (col - mx).exp();
          col /= col.sum();
          s.col(j).tail(T - j - 1).setZero();
        }
        rcpu::detail::gemm<float>(detail::Op::transpose, detail::Op::none, 1.0f, s, vh, 0.0f,
                                  out.block(w * T, h * hd, T, hd));
      }
  }

  LlamaConfig m_config;
  Eigen::MatrixXf m_embedding;
  Eigen::MatrixXf m_output;  // empty when tied
  Eigen::VectorXf m_output_norm;
  std::vector<LlamaLayer> m_layers;
};

/// A LLaMA GGUF file read one piece at a time: its layout from the metadata (checked as
/// LlamaModel::from_gguf() checks it, which is built on this class), then each layer, the embedding
/// rows of given tokens and the other tensors on demand, dequantized to float. A pipeline that holds
/// one layer at a time (streamed.hpp) reads a model of any size this way. Holds a copy of the file
/// (cheap: the mapping is shared).
class LlamaGgufReader {
 public:
  /// Parses and checks the layout. \throws rcpu::invalid_argument as LlamaModel::from_gguf().
  explicit LlamaGgufReader(const io::GgufFile& file) : m_file(file) {
    const std::string arch = file.get_string("general.architecture", "");
    if (arch != "llama" && arch != "deci") fail("general.architecture = '" + arch + "', expected 'llama' or 'deci'");
    const std::string k = arch + ".";
    const auto positive = [&](const std::string& key, std::int64_t v) -> Index {
      if (v <= 0 || v > (std::int64_t(1) << 31)) fail(key + " = " + std::to_string(v) + " is not a positive size");
      return static_cast<Index>(v);
    };
    const auto key_int = [&](const std::string& key) -> Index {
      if (!file.has(key)) fail(key + " is missing");
      return positive(key, file.get_int(key, -1));
    };
    LlamaConfig& c = m_config;
    c.n_layers = key_int(k + "block_count");
    // A per-layer size: a scalar for every layer, or an array of n_layers integers.
    const auto per_layer = [&](const std::string& key, const std::vector<Index>* fallback) -> std::vector<Index> {
      const io::GgufValue* v = file.find(key);
      if (v == nullptr) {
        if (fallback == nullptr) fail(key + " is missing");
        return *fallback;
      }
      if (!v->is_array()) return std::vector<Index>(static_cast<std::size_t>(c.n_layers), key_int(key));
      if (Index(v->size()) != c.n_layers)
        fail(key + " has " + std::to_string(v->size()) + " entries, " + k + "block_count is " + std::to_string(c.n_layers));
      std::vector<std::int64_t> raw;
      try {
        raw = v->ints();
      } catch (const invalid_argument& e) {
        fail(key + ": " + e.what());
      }
      std::vector<Index> out;
      for (std::size_t l = 0; l < raw.size(); ++l) {
        if (raw[l] == 0)
          fail(key + "[" + std::to_string(l) + "] = 0: layers without attention or MLP are not supported");
        out.push_back(positive(key + "[" + std::to_string(l) + "]", raw[l]));
      }
      return out;
    };
    m_heads = per_layer(k + "attention.head_count", nullptr);
    m_kv = per_layer(k + "attention.head_count_kv", &m_heads);
    m_ffn = per_layer(k + "feed_forward_length", nullptr);
    c.d_model = key_int(k + "embedding_length");
    c.n_heads = *std::max_element(m_heads.begin(), m_heads.end());
    c.n_kv_heads = *std::max_element(m_kv.begin(), m_kv.end());
    c.ffn = *std::max_element(m_ffn.begin(), m_ffn.end());
    c.context = file.has(k + "context_length") ? key_int(k + "context_length") : 0;
    c.head_dim = file.has(k + "attention.key_length") ? key_int(k + "attention.key_length") : c.d_model / m_heads.front();
    if (file.has(k + "attention.value_length") && key_int(k + "attention.value_length") != c.head_dim)
      fail(k + "attention.value_length differs from the key length (not a LLaMA layout)");
    c.n_rot = file.has(k + "rope.dimension_count") ? key_int(k + "rope.dimension_count") : c.head_dim;
    c.rms_eps = static_cast<float>(file.get_double(k + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_base = file.get_double(k + "rope.freq_base", 10000.0);
    const std::string scaling = file.get_string(k + "rope.scaling.type", "none");
    if (scaling != "none") fail("rope scaling '" + scaling + "' is not supported");
    for (std::size_t l = 0; l < m_heads.size(); ++l)
      if (m_heads[l] % m_kv[l] != 0)
        fail("layer " + std::to_string(l) + ": head_count = " + std::to_string(m_heads[l]) +
             " is not a multiple of head_count_kv = " + std::to_string(m_kv[l]));
    if (!(c.rms_eps > 0.0f) || !(c.rope_base > 0.0)) fail("rms epsilon and rope base must be > 0");

    // Each layer has 9 tensors: check the count against the file before allocating anything for it.
    if (static_cast<std::uint64_t>(c.n_layers) * 9 + 2 > file.tensors().size())
      fail(k + "block_count = " + std::to_string(c.n_layers) + " needs at least " + std::to_string(c.n_layers * 9 + 2) +
           " tensors, the file has " + std::to_string(file.tensors().size()));
    // Tensors that change the model but that rcpu's layer has no place for would be dropped silently:
    // refuse them (q/k/v and gate/up biases; Llama 3's RoPE frequency factors).
    for (const io::GgufTensorInfo& t : file.tensors()) {
      for (const char* b : {".attn_q.bias", ".attn_k.bias", ".attn_v.bias", ".ffn_gate.bias", ".ffn_up.bias"})
        if (t.name.size() > std::strlen(b) && t.name.compare(t.name.size() - std::strlen(b), std::strlen(b), b) == 0)
          fail("tensor '" + t.name + "': q/k/v and gate/up biases are not supported");
      if (t.name == "rope_freqs.weight" || t.name.find(".rope_freqs.") != std::string::npos)
        fail("tensor '" + t.name + "': RoPE frequency factors (Llama 3.1 scaling) are not supported");
    }
    const io::GgufTensorInfo& emb = file.tensor("token_embd.weight");
    c.vocab = emb.shape.size() == 2 ? static_cast<Index>(emb.shape[1]) : 0;
    check_shape("token_embd.weight", c.vocab, c.d_model);
    c.tied_output = file.find_tensor("output.weight") == nullptr;
    if (!c.tied_output) check_shape("output.weight", c.vocab, c.d_model);
    check_shape("output_norm.weight", 1, c.d_model);
    if (!(c.head_dim > 0 && c.n_rot >= 0 && c.n_rot <= c.head_dim && c.n_rot % 2 == 0))
      fail("rope.dimension_count = " + std::to_string(c.n_rot) + " must be even and in [0, head_dim = " +
           std::to_string(c.head_dim) + "]");
    // Every layer's tensors: present, of the right shape and of a type rcpu reads, before any of them is
    // read (a pipeline that reads one layer at a time would otherwise find a bad last layer after hours).
    for (Index l = 0; l < c.n_layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const std::size_t i = static_cast<std::size_t>(l);
      const Index d = c.d_model, hd = c.head_dim;
      const std::pair<const char*, std::pair<Index, Index>> shapes[] = {
          {"attn_norm.weight", {1, d}},          {"attn_q.weight", {m_heads[i] * hd, d}},
          {"attn_k.weight", {m_kv[i] * hd, d}},  {"attn_v.weight", {m_kv[i] * hd, d}},
          {"attn_output.weight", {d, m_heads[i] * hd}}, {"attn_output.bias", {1, d}},
          {"ffn_norm.weight", {1, d}},           {"ffn_gate.weight", {m_ffn[i], d}},
          {"ffn_up.weight", {m_ffn[i], d}},      {"ffn_down.weight", {d, m_ffn[i]}},
          {"ffn_down.bias", {1, d}}};
      for (const auto& s : shapes) {
        const std::string name = p + s.first;
        const bool optional = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
        if (optional && file.find_tensor(name) == nullptr) continue;
        check_shape(name, s.second.first, s.second.second);
      }
    }
  }

  /// The dense configuration (the largest per-layer sizes; tied_output when the file has no output.weight).
  const LlamaConfig& config() const { return m_config; }
  const io::GgufFile& file() const { return m_file; }
  Index n_layers() const { return m_config.n_layers; }

  /// Layer `l`, dequantized, with its dense bookkeeping (head_kv, head_ids, channel_ids).
  /// \throws rcpu::invalid_argument for a missing tensor or a bad shape.
  LlamaLayer layer(Index l) const {
    rcpu::detail::require(l >= 0 && l < n_layers(), "LlamaGgufReader::layer: layer " + std::to_string(l) +
                                                         " is outside [0, " + std::to_string(n_layers()) + ")");
    const std::string p = "blk." + std::to_string(l) + ".";
    const std::size_t i = static_cast<std::size_t>(l);
    const Index d = m_config.d_model, hd = m_config.head_dim;
    LlamaLayer L;
    L.head_dim = hd;
    L.attn_norm = vector(p + "attn_norm.weight", d);
    L.wq = matrix(p + "attn_q.weight", m_heads[i] * hd, d);
    L.wk = matrix(p + "attn_k.weight", m_kv[i] * hd, d);
    L.wv = matrix(p + "attn_v.weight", m_kv[i] * hd, d);
    L.wo = matrix(p + "attn_output.weight", d, m_heads[i] * hd);
    if (m_file.find_tensor(p + "attn_output.bias") != nullptr) L.bo = vector(p + "attn_output.bias", d);
    L.ffn_norm = vector(p + "ffn_norm.weight", d);
    L.w_gate = matrix(p + "ffn_gate.weight", m_ffn[i], d);
    L.w_up = matrix(p + "ffn_up.weight", m_ffn[i], d);
    L.w_down = matrix(p + "ffn_down.weight", d, m_ffn[i]);
    if (m_file.find_tensor(p + "ffn_down.bias") != nullptr) L.b_down = vector(p + "ffn_down.bias", d);
    LlamaConfig lc = m_config;
    lc.n_heads = m_heads[i];
    lc.n_kv_heads = m_kv[i];
    lc.ffn = m_ffn[i];
    LlamaModel::dense_bookkeeping(L, lc);
    return L;
  }

  /// Tells the operating system that layer `l`'s bytes in the mapping are no longer needed, so that
  /// they stop counting in this process's resident memory (they are read again if used again).
  void release_layer(Index l) const {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                          "attn_output.bias", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
                          "ffn_down.bias"})
      if (const io::GgufTensorInfo* t = m_file.find_tensor(p + n)) m_file.release(*t);
  }

  Eigen::MatrixXf embedding() const { return matrix("token_embd.weight", m_config.vocab, m_config.d_model); }
  /// The output head, or an empty matrix when it is tied to the embedding.
  Eigen::MatrixXf output() const {
    return m_config.tied_output ? Eigen::MatrixXf() : matrix("output.weight", m_config.vocab, m_config.d_model);
  }
  Eigen::VectorXf output_norm() const { return vector("output_norm.weight", m_config.d_model); }

  /// Hidden states of `ids` (rows = tokens): the embedding rows of those tokens only, equal to
  /// LlamaModel::embed() on the loaded model. \throws rcpu::invalid_argument for a token outside the vocabulary.
  Eigen::MatrixXf embed(const std::vector<std::int32_t>& ids) const {
    const io::GgufTensorInfo& t = m_file.tensor("token_embd.weight");
    Eigen::MatrixXf h(static_cast<Index>(ids.size()), m_config.d_model);
    Eigen::VectorXf row(m_config.d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const std::int32_t id = ids[i];
      rcpu::detail::require(id >= 0 && id < m_config.vocab, "LlamaGgufReader::embed: token " + std::to_string(id) +
                                                                " at " + std::to_string(i) + " is outside [0, " +
                                                                std::to_string(m_config.vocab) + ")");
      m_file.tensor_rows(t, static_cast<std::uint64_t>(id), 1, row.data());
      h.row(static_cast<Index>(i)) = row.transpose();
    }
    m_file.release(t);
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw invalid_argument("LlamaModel::from_gguf: " + m_file.source() + ": " + what);
  }
  void check_shape(const std::string& name, Index rows, Index cols) const {
    const io::GgufTensorInfo& t = m_file.tensor(name);
    const Index r = t.shape.size() < 2 ? 1 : static_cast<Index>(t.shape[1]);
    const Index cc = t.shape.empty() ? 1 : static_cast<Index>(t.shape[0]);
    if (t.shape.size() > 2 || r != rows || cc != cols)
      fail("tensor '" + name + "' is " + rcpu::detail::shape(r, cc) + " (d_out x d_in), expected " +
           rcpu::detail::shape(rows, cols));
    const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(t.type));
    if (tt == nullptr || !tt->dequantizable)
      fail("tensor '" + name + "' has type " + (tt ? std::string(tt->name) : std::to_string(std::uint32_t(t.type))) +
           ", which rcpu cannot read");
  }
  Eigen::MatrixXf matrix(const std::string& name, Index rows, Index cols) const {
    check_shape(name, rows, cols);
    return m_file.tensor_matrix(name);
  }
  Eigen::VectorXf vector(const std::string& name, Index n) const {
    const Eigen::MatrixXf m = matrix(name, 1, n);
    return m.transpose();
  }
  io::GgufFile m_file;
  LlamaConfig m_config;
  std::vector<Index> m_heads, m_kv, m_ffn;
};

inline LlamaModel LlamaModel::from_gguf(const io::GgufFile& file) {
  const LlamaGgufReader r(file);
  std::vector<LlamaLayer> layers;
  layers.reserve(static_cast<std::size_t>(r.n_layers()));
  for (Index l = 0; l < r.n_layers(); ++l) layers.push_back(r.layer(l));
  LlamaConfig c = r.config();
  return from_weights(c, r.embedding(), std::move(layers), r.output_norm(), r.output());
}


}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_LLAMA_HPP
