// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_PIPELINE_HPP
#define RCPU_MODEL_PIPELINE_HPP

/// \file pipeline.hpp
/// The RCPU paper's pruning pipeline (METHOD.md section 5) over a real LLaMA model, layer by layer:
///
///   for l = 0 .. L-1:
///     run the DENSE layer l on the hidden states that come out of the already-pruned layers 0..l-1,
///       recording statistics at the inputs of o_proj and down_proj (one pass, both modules);
///     prune and compensate o_proj (attention heads), then down_proj (MLP channels);
///     run the PRUNED layer l to produce the inputs of layer l+1.
///
/// With PipelineOptions::statistics = StatisticsSource::dense (FLAP's code), layer l is instead
/// pruned from the statistics of the dense model's own hidden states at layer l: one dense pass feeds
/// every layer, and the pruned layers never feed each other.
///
/// The result is a really smaller LlamaModel (fewer query heads, possibly fewer KV heads, fewer MLP
/// channels per layer) with its parameter count, and a report per layer (rcpu::LayerReport of both
/// modules, kept units, timing).
///
/// Choices it makes (docs/pipeline.md has the long form):
/// - Ratio: uniform over layers by default, floor(ratio * units) removed per layer and module (the
///   paper's rule; SmolLM2's 9 heads lose 0/1/2 heads at 10/20/30%). Allocation::flap_adaptive uses
///   FLAP's global AL-AM allocation instead (flap_allocation()).
/// - Grouped-query attention (GqaRule): query heads are scored like heads of plain multi-head
///   attention (their columns of o_proj); query_heads removes the lowest query heads anywhere and drops
///   a KV head only when no query head of its group is left; kv_groups removes whole groups (a group
///   scores the sum of its heads' scores, or their mean for FLAP's standardised scores); balanced
///   removes the same number of query heads from every group (the model keeps equal group sizes).
/// - A module with no unit removed is left exactly as it is: the compensation of an unpruned layer
///   is the identity in exact arithmetic, and skipping it makes ratio 0 reproduce the dense model.
/// - The pruned pass reuses the dense pass's attention output: the kept heads' q/k/v rows are the
///   dense ones, so their attention output is the same; only o_proj and the MLP are recomputed.
/// - prune_models() runs several configurations in lockstep and shares the hidden states (and the
///   dense pass with its statistics) between configurations for as long as their pruned layers are
///   bit-for-bit identical (e.g. methods that differ only on o_proj at a ratio that removes no head).
///   Configurations with dense statistics all follow the dense hidden states: they share one branch
///   (and its dense pass) from start to end, whatever they prune.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <map>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <Eigen/LU>

#include "../compensation.hpp"
#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "../report.hpp"
#include "../scores.hpp"
#include "../selection.hpp"
#include "../statistics.hpp"
#include "block_rotation.hpp"
#include "llama.hpp"

namespace rcpu {
namespace model {

/// How attention heads are removed under grouped-query attention (see the file comment).
enum class GqaRule {
  query_heads,  ///< remove floor(r * n_heads) query heads anywhere; a KV head goes when its group is empty
  kv_groups,    ///< remove floor(r * n_kv_heads) whole KV groups (their query heads, k and v rows)
  balanced      ///< remove floor(r * group_size) query heads from every group
};

/// How many units each layer loses.
enum class Allocation {
  uniform,       ///< floor(ratio * units) in every layer and module (the paper)
  flap_adaptive  ///< FLAP's AL-AM: one global threshold on standardised WIFV scores (flap_allocation())
};

/// The rotation used for o_proj by rotation-based compensations.
enum class OprojRotation {
  full,     ///< one d x d rotation (the paper)
  per_head  ///< block-diagonal, blocks of head_dim output channels (compensate_block_rotation())
};

/// Where the calibration statistics of layer l (and so its scores, selection and compensation targets)
/// come from.
enum class StatisticsSource {
  pruned_prefix,  ///< the dense layer l on the outputs of the already-pruned layers 0..l-1 (sequential)
  dense           ///< the dense model's own hidden states at layer l (one dense pass; FLAP's code)
};

inline const char* to_string(GqaRule r) {
  switch (r) {
    case GqaRule::query_heads: return "query_heads";
    case GqaRule::kv_groups: return "kv_groups";
    case GqaRule::balanced: return "balanced";
  }
  return "unknown";
}
inline const char* to_string(Allocation a) { return a == Allocation::uniform ? "uniform" : "flap_adaptive"; }
inline const char* to_string(OprojRotation r) { return r == OprojRotation::full ? "full" : "per_head"; }
inline const char* to_string(StatisticsSource s) { return s == StatisticsSource::dense ? "dense" : "pruned_prefix"; }

/// Parses the names printed by to_string(GqaRule). \throws rcpu::invalid_argument if unknown.
inline GqaRule gqa_rule_from_string(const std::string& s) {
  for (GqaRule r : {GqaRule::query_heads, GqaRule::kv_groups, GqaRule::balanced})
    if (s == to_string(r)) return r;
  rcpu::detail::fail("unknown GQA rule '" + s + "' (query_heads, kv_groups, balanced)");
}
/// Parses the names printed by to_string(Allocation). \throws rcpu::invalid_argument if unknown.
inline Allocation allocation_from_string(const std::string& s) {
  for (Allocation a : {Allocation::uniform, Allocation::flap_adaptive})
    if (s == to_string(a)) return a;
  rcpu::detail::fail("unknown allocation '" + s + "' (uniform, flap_adaptive)");
}
/// Parses the names printed by to_string(OprojRotation). \throws rcpu::invalid_argument if unknown.
inline OprojRotation o_proj_rotation_from_string(const std::string& s) {
  for (OprojRotation r : {OprojRotation::full, OprojRotation::per_head})
    if (s == to_string(r)) return r;
  rcpu::detail::fail("unknown o_proj rotation '" + s + "' (full, per_head)");
}
/// Parses the names printed by to_string(StatisticsSource), and "pruned" for pruned_prefix.
/// \throws rcpu::invalid_argument if unknown.
inline StatisticsSource statistics_source_from_string(const std::string& s) {
  if (s == "pruned" || s == to_string(StatisticsSource::pruned_prefix)) return StatisticsSource::pruned_prefix;
  if (s == to_string(StatisticsSource::dense)) return StatisticsSource::dense;
  rcpu::detail::fail("unknown statistics source '" + s + "' (pruned_prefix or pruned, dense)");
}

/// Whether a compensation is one of the rotations.
inline bool is_rotation(Compensation c) {
  return c == Compensation::rotation || c == Compensation::rotation_scale || c == Compensation::rotation_bias;
}

/// One pruning configuration.
struct PipelineOptions {
  /// Fraction of units removed in every layer, in [0, 1): floor(ratio * units) heads and channels
  /// (uniform), or the global parameter fraction (flap_adaptive).
  double ratio = 0.2;
  /// Ratios for heads and MLP channels separately (uniform allocation only); negative: `ratio`.
  double attention_ratio = -1.0;
  double mlp_ratio = -1.0;
  /// Which units go: the score of each head / channel on the layer's statistics (see `statistics`).
  Score score = Score::rcpu;
  /// How the kept columns are repaired.
  Compensation compensation = Compensation::rotation;
  CompensationOptions compensation_options;
  /// When > 0, the ridge strength of least_squares, proximal_ridge and rotation_ridge is set per layer
  /// and module to relative_lambda * tr(G_KK) / k (the mean energy of a kept channel over the calibration tokens),
  /// which makes one value fit layers whose activations differ by orders of magnitude. 0: use
  /// compensation_options.lambda as it is.
  double relative_lambda = 0.0;
  /// Compensate o_proj / down_proj (false: that module is only pruned; the paper's ablation).
  bool compensate_attention = true;
  bool compensate_mlp = true;
  GqaRule gqa = GqaRule::query_heads;
  Allocation allocation = Allocation::uniform;
  OprojRotation o_proj_rotation = OprojRotation::full;
  /// Where layer l's statistics come from: the dense layer l on the pruned prefix's outputs (default,
  /// the RCPU paper's sequential pipeline) or the dense model's hidden states (FLAP's code: one dense
  /// pass, every layer pruned from it). Scores, selection and compensation targets all follow it.
  StatisticsSource statistics = StatisticsSource::pruned_prefix;
  /// Explicit per-layer numbers of removed query heads and MLP channels (n_layers entries each), e.g.
  /// from flap_allocation(); they override ratio and allocation. Empty: not used.
  std::vector<Index> removed_heads, removed_channels;
  /// When > 0, the kept units of every pruned module are rounded to sizes that fill hardware blocks:
  /// kept MLP channels to a multiple of round_to, kept query heads so that heads * head_dim is one
  /// (under kv_groups and balanced, whole groups / equal per-group counts that do so), to the nearest
  /// such count (ties: keep more; at least one unit). A module with nothing removed stays dense.
  /// Quantized GGUF types need rows in multiples of 32 (Q8_0, Q4_0) or 256 (K-quants).
  Index round_to = 0;
  /// Tokens per calibration window (each window an independent sequence).
  Index seq_len = 128;
  /// Windows per forward chunk: bounds the temporary memory of one layer's pass.
  Index chunk_windows = 32;
  /// A name for progress lines and results.
  std::string label;

  double heads_ratio() const { return attention_ratio >= 0 ? attention_ratio : ratio; }
  double channels_ratio() const { return mlp_ratio >= 0 ? mlp_ratio : ratio; }
};

/// What happened to one layer.
struct LayerOutcome {
  Index layer = 0;
  std::vector<Index> kept_heads;     ///< query heads kept (dense indices, increasing)
  std::vector<Index> kept_channels;  ///< MLP channels kept (dense indices, increasing)
  Index heads = 0, kv_heads = 0, channels = 0;  ///< counts after pruning
  bool attention_pruned = false, mlp_pruned = false;  ///< whether any unit was removed
  LayerReport attention, mlp;  ///< reports on the calibration statistics (default when not pruned)
  double lambda_attention = 0, lambda_mlp = 0;  ///< absolute ridge strength used (ridge methods)
  int det_attention = 0, det_mlp = 0;  ///< sign of det(Q) for rotation methods (0: no rotation)
  Index parameters = 0;        ///< parameters of the pruned layer
  double seconds_dense = 0;    ///< dense pass + statistics (shared by configurations in lockstep)
  double seconds_statistics = 0;  ///< of which statistics (Statistics::update on both inputs)
  double seconds_prune = 0;    ///< scores, selection and compensation of both modules
  double seconds_forward = 0;  ///< pruned pass that feeds the next layer (shared likewise; 0 with dense
                               ///< statistics: the dense pass feeds the next layer)
  Index shared_with = 1;       ///< configurations that shared the dense pass
  double seconds() const { return seconds_dense + seconds_prune + seconds_forward; }
};

/// A pruned model and how it was made.
struct PipelineResult {
  PipelineOptions options;
  LlamaModel model;
  std::vector<LayerOutcome> layers;
  Index parameters_dense = 0;
  Index parameters = 0;
  double seconds_allocation = 0;  ///< FLAP's scoring pass (flap_adaptive only)
  double seconds = 0;             ///< sum of the per-layer seconds (+ allocation)
};

/// Per-layer counts of removed units, and the fraction of the prunable cost kept.
struct LayerBudget {
  std::vector<Index> heads_removed, channels_removed;
  double retained_cost_fraction = 1.0;
};

/// FLAP's standardised scores of every head and channel of the dense model (flap_scores()).
struct FlapScores {
  std::vector<Eigen::VectorXd> heads;     ///< per layer: mean standardised WIFV of each query head
  std::vector<Eigen::VectorXd> channels;  ///< per layer: standardised WIFV of each MLP channel
};

/// Reports the progress of a pipeline: called after each layer with (layer, n_layers).
using LayerCallback = std::function<void(Index layer, Index n_layers)>;

/// Called on the statistics of every dense pass before they are used (the o_proj input, then the
/// down_proj input, of each layer, in the same order on every call), e.g. to combine the calibration
/// shards of several processes (rcpu/model/distributed.hpp). It must keep the channel count and Gram
/// mode. Without one, the statistics are those of this process's calibration windows.
using StatisticsReducer = std::function<void(Statistics<float>&)>;

namespace detail {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline void check_calibration(const LlamaConfig& c, const std::vector<std::int32_t>& calib, Index seq_len,
                              const char* who) {
  rcpu::detail::require(seq_len >= 1, std::string(who) + ": seq_len = " + std::to_string(seq_len) + " must be >= 1");
  rcpu::detail::require(!calib.empty() && Index(calib.size()) % seq_len == 0,
                        std::string(who) + ": the calibration holds " + std::to_string(calib.size()) +
                            " tokens, expected a positive multiple of seq_len = " + std::to_string(seq_len));
  rcpu::detail::require(c.n_layers >= 1, std::string(who) + ": the model has no layers");
}

inline void validate_options(const PipelineOptions& o, const LlamaConfig& c, const char* who) {
  const std::string w = std::string(who) + ": options '" + o.label + "': ";
  rcpu::detail::require_ratio(o.ratio, (w + "ratio").c_str());
  rcpu::detail::require(o.attention_ratio < 1.0 && o.mlp_ratio < 1.0,
                        w + "attention_ratio and mlp_ratio must be < 1 (negative: use ratio)");
  rcpu::detail::require(std::isfinite(o.relative_lambda) && o.relative_lambda >= 0,
                        w + "relative_lambda = " + std::to_string(o.relative_lambda) + " must be finite and >= 0");
  rcpu::detail::require(o.chunk_windows >= 1, w + "chunk_windows must be >= 1");
  rcpu::detail::require(o.round_to >= 0, w + "round_to = " + std::to_string(o.round_to) + " must be >= 0");
  rcpu::detail::require(o.statistics == StatisticsSource::pruned_prefix || o.statistics == StatisticsSource::dense,
                        w + "statistics = " + std::to_string(int(o.statistics)) + " is not a StatisticsSource");
  rcpu::detail::require(o.allocation == Allocation::uniform || o.gqa == GqaRule::query_heads,
                        w + "flap_adaptive allocation counts query heads: it needs gqa = query_heads, got " +
                            to_string(o.gqa));
  rcpu::detail::require(o.removed_heads.empty() || Index(o.removed_heads.size()) == c.n_layers,
                        w + "removed_heads has " + std::to_string(o.removed_heads.size()) + " entries, expected " +
                            std::to_string(c.n_layers));
  rcpu::detail::require(o.removed_channels.empty() || Index(o.removed_channels.size()) == c.n_layers,
                        w + "removed_channels has " + std::to_string(o.removed_channels.size()) +
                            " entries, expected " + std::to_string(c.n_layers));
  rcpu::detail::require(o.removed_heads.empty() || o.gqa == GqaRule::query_heads,
                        w + "explicit removed_heads counts query heads: it needs gqa = query_heads");
  rcpu::detail::require(o.o_proj_rotation == OprojRotation::full || !o.compensate_attention ||
                            is_rotation(o.compensation),
                        w + "o_proj_rotation = per_head needs a rotation compensation, got '" +
                            to_string(o.compensation) + "'");
}

// Where a pipeline reads the dense layers: `layer(l)` gives dense layer l (valid until the next call),
// `release(l)` (optional) says that layer l is no longer needed. A model in memory, or a GGUF file
// read one layer at a time (streamed.hpp).
// `owned(l)` (optional): the source's own copy of layer l, which a single configuration may move
// from once its dense pass is done (so that pruning needs no second copy of the layer).
struct DenseLayers {
  LlamaConfig config;
  std::function<const LlamaLayer&(Index l)> layer;
  std::function<void(Index l)> release;
  std::function<LlamaLayer*(Index l)> owned;
};

// Where a pipeline puts each pruned layer, in layer order per configuration.
using PrunedLayerSink = std::function<void(std::size_t config, Index l, LlamaLayer&& layer)>;

inline DenseLayers dense_layers_of(const LlamaModel& m) {
  return {m.config(), [&m](Index l) -> const LlamaLayer& { return m.layer(l); }, {}, {}};
}

// The checks of every pipeline entry point: calibration, options, one seq_len.
inline void check_configs(const LlamaConfig& c, const std::vector<std::int32_t>& calibration,
                          const std::vector<PipelineOptions>& configs, const char* who) {
  rcpu::detail::require(!configs.empty(), std::string(who) + ": no configuration");
  const Index seq_len = configs.front().seq_len;
  check_calibration(c, calibration, seq_len, who);
  for (const PipelineOptions& o : configs) {
    validate_options(o, c, who);
    rcpu::detail::require(o.seq_len == seq_len, std::string(who) + ": every configuration needs the same seq_len");
  }
}

inline bool needs_gram_for(const PipelineOptions& o, bool attention) {
  return (attention ? o.compensate_attention : o.compensate_mlp) && needs_gram(o.compensation);
}

// The dense pass of layer l over all windows, in chunks: statistics of the o_proj and down_proj inputs
// and the attention output (the o_proj input) of every token, kept for the pruned pass.
struct DensePass {
  Statistics<float> o_stats, d_stats;
  Eigen::MatrixXf attention;  // tokens x (n_heads * head_dim)
  double seconds_statistics = 0;
};

inline void run_dense_pass(const LlamaConfig& c, const LlamaLayer& L, Index l, const Eigen::MatrixXf& hidden,
                           Index seq_len, Index chunk_windows, bool gram_o, bool gram_d, bool keep_attention,
                           DensePass& out, Eigen::MatrixXf* next_hidden = nullptr) {
  const Index n = hidden.rows(), width = L.n_heads() * L.head_dim;
  out.o_stats = Statistics<float>(width, gram_o ? GramMode::full : GramMode::diagonal);
  out.d_stats = Statistics<float>(L.ffn(), gram_d ? GramMode::full : GramMode::diagonal);
  if (keep_attention) out.attention.resize(n, width);
  Index r0 = 0;
  ForwardTaps taps;
  out.seconds_statistics = 0;
  taps.o_proj_input = [&](Index, const Eigen::MatrixXf& a) {
    const auto t0 = std::chrono::steady_clock::now();
    out.o_stats.update(a);
    out.seconds_statistics += seconds_since(t0);
    if (keep_attention) out.attention.middleRows(r0, a.rows()) = a;
  };
  taps.down_proj_input = [&](Index, const Eigen::MatrixXf& g) {
    const auto t0 = std::chrono::steady_clock::now();
    out.d_stats.update(g);
    out.seconds_statistics += seconds_since(t0);
  };
  const Index rows = chunk_windows * seq_len;
  Eigen::MatrixXf x;
  for (r0 = 0; r0 < n; r0 += rows) {
    const Index nr = std::min(rows, n - r0);
    x = hidden.middleRows(r0, nr);
    LlamaModel::forward_layer(c, L, l, x, seq_len, &taps);
    if (next_hidden != nullptr) next_hidden->middleRows(r0, nr) = x;
  }
}

// The pruned layer L on `hidden` (in place), reusing the dense attention output of its kept heads.
inline void run_pruned_pass(const LlamaLayer& L, const Eigen::MatrixXf& dense_attention, float eps, Index seq_len,
                            Index chunk_windows, Eigen::MatrixXf& hidden) {
  const Index n = hidden.rows(), hd = L.head_dim, k = L.n_heads();
  const Index rows = chunk_windows * seq_len;
  Eigen::MatrixXf h, a(std::min(rows, n), k * hd);
  for (Index r0 = 0; r0 < n; r0 += rows) {
    const Index nr = std::min(rows, n - r0);
    h = hidden.middleRows(r0, nr);
    a.resize(nr, k * hd);
    for (Index i = 0; i < k; ++i) {
      const Index src = L.head_ids.empty() ? i : L.head_ids[std::size_t(i)];
      a.middleCols(i * hd, hd) = dense_attention.block(r0, src * hd, nr, hd);
    }
    add_linear(h, a, L.wo);
    if (L.bo.size() != 0) h.rowwise() += L.bo.transpose();
    const Eigen::MatrixXf x = detail::rms_norm(h, L.ffn_norm, eps);
    Eigen::MatrixXf gate = linear(x, L.w_gate);
    const Eigen::MatrixXf up = linear(x, L.w_up);
    gate.array() = gate.array() / (1.0f + (-gate.array()).exp()) * up.array();
    add_linear(h, gate, L.w_down);
    if (L.b_down.size() != 0) h.rowwise() += L.b_down.transpose();
    hidden.middleRows(r0, nr) = h;
  }
}

inline Index layer_parameters(const LlamaLayer& L) {
  return L.attn_norm.size() + L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() + L.bo.size() +
         L.ffn_norm.size() + L.w_gate.size() + L.w_up.size() + L.w_down.size() + L.b_down.size();
}

inline bool same_layer(const LlamaLayer& a, const LlamaLayer& b) {
  const auto same = [](const auto& x, const auto& y) {
    return x.rows() == y.rows() && x.cols() == y.cols() && (x.size() == 0 || x == y);
  };
  return a.head_ids == b.head_ids && a.head_kv == b.head_kv && a.channel_ids == b.channel_ids && same(a.wo, b.wo) &&
         same(a.bo, b.bo) && same(a.w_down, b.w_down) && same(a.b_down, b.b_down) && same(a.wk, b.wk);
}

// Kept query heads (increasing) for one layer under a GQA rule. `removed` >= 0 forces the number of
// query heads removed (query_heads only). `round_to` > 0 rounds the kept heads (rounded_keep()).
inline std::vector<Index> choose_heads(const Eigen::VectorXd& head_scores, const std::vector<Index>& head_kv,
                                       Index n_kv, GqaRule rule, double ratio, Index removed, Score score,
                                       Index head_dim = 1, Index round_to = 0) {
  const Index H = head_scores.size();
  if (rule == GqaRule::query_heads) {
    const Index r = removed >= 0 ? std::min(removed, H - 1) : removed_count(H, ratio);
    return keep_top(head_scores, rounded_keep(H, H - r, head_dim, round_to));
  }
  // Members of each KV group.
  std::vector<std::vector<Index>> members(static_cast<std::size_t>(n_kv));
  for (Index h = 0; h < H; ++h) members[std::size_t(head_kv[std::size_t(h)])].push_back(h);
  std::vector<Index> kept;
  if (rule == GqaRule::kv_groups) {
    const bool mean = resolve(GroupReduce::automatic, score) == GroupReduce::standardized_mean;
    Eigen::VectorXd gs(n_kv);
    for (Index g = 0; g < n_kv; ++g) {
      double s = 0;
      for (Index h : members[std::size_t(g)]) s += head_scores(h);
      gs(g) = mean ? s / double(members[std::size_t(g)].size()) : s;
    }
    const Index group = H / n_kv;  // kv_groups is used on dense layers: equal groups
    for (Index g : keep_top(gs, rounded_keep(n_kv, n_kv - removed_count(n_kv, ratio), group * head_dim, round_to)))
      kept.insert(kept.end(), members[std::size_t(g)].begin(), members[std::size_t(g)].end());
  } else {  // balanced
    for (const auto& mem : members) {
      const Index gsz = Index(mem.size());
      Eigen::VectorXd s(gsz);
      for (Index i = 0; i < gsz; ++i) s(i) = head_scores(mem[std::size_t(i)]);
      const Index keep = rounded_keep(gsz, gsz - removed_count(gsz, ratio), n_kv * head_dim, round_to);
      for (Index i : keep_top(s, keep)) kept.push_back(mem[std::size_t(i)]);
    }
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Sign of det Q for the report: 0 without a rotation; +1 when Q was not formed (Q is then free on a
// complement of M's row space, so a proper Q gives the same W').
inline int det_sign(const Compensated<double>& c) {
  if (c.rotation.size() != 0) return rcpu::detail::determinant_sign(c.rotation);
  return c.singular_values.size() != 0 ? 1 : 0;  // a rotation was solved (rotation_ridge too), Q not formed
}

// Compensates one module: weight `W` (d x d_in) with optional bias, pruned to `cols`.
inline Compensated<double> compensate_module(const Eigen::MatrixXf& W, const Eigen::VectorXf& b,
                                             const Statistics<float>& st, const std::vector<Index>& cols,
                                             Compensation method, const PipelineOptions& o, Index block,
                                             double& lambda_used) {
  CompensationOptions copt = o.compensation_options;
  const bool ridge = method == Compensation::least_squares || method == Compensation::proximal_ridge ||
                     method == Compensation::rotation_ridge;
  if (ridge && o.relative_lambda > 0) {
    double e = 0;
    for (Index j : cols) e += double(st.sq_sum()(j));
    copt.lambda = o.relative_lambda * e / double(cols.size());
  }
  lambda_used = ridge ? copt.lambda : 0.0;
  if (block > 0 && is_rotation(method))
    return compensate_block_rotation(W, Eigen::VectorXd(b.cast<double>()), st, cols, block, method, copt);
  const Eigen::MatrixXd Wd = W.cast<double>();
  if (b.size() != 0) return compensate(Wd, Eigen::VectorXd(b.cast<double>()), st, cols, method, copt);
  return compensate(Wd, st, cols, method, copt);
}

// Prunes one layer for one configuration from the dense pass's statistics: `L` is the dense layer (a
// copy, or the layer itself moved in when nothing else needs it: no second copy of a large layer).
inline LlamaLayer prune_layer_once(LlamaLayer L, const DensePass& pass, const PipelineOptions& o, Index l,
                                   LayerOutcome& out) {
  const Index hd = L.head_dim, H = L.n_heads();
  out.layer = l;
  // o_proj: heads.
  {
    const Index forced = o.removed_heads.empty() ? -1 : o.removed_heads[std::size_t(l)];
    const Eigen::VectorXd hs = unit_scores(L.wo, pass.o_stats, o.score, hd, GroupReduce::automatic, Module::attention);
    const std::vector<Index> kept =
        choose_heads(hs, L.head_kv, L.n_kv_heads(), o.gqa, o.heads_ratio(), forced, o.score, hd, o.round_to);
    if (Index(kept.size()) < H) {
      const std::vector<Index> cols = expand_groups(kept, hd);
      const Compensation method = o.compensate_attention ? o.compensation : Compensation::none;
      const Index block = o.o_proj_rotation == OprojRotation::per_head ? hd : 0;
      Compensated<double> c = compensate_module(L.wo, L.bo, pass.o_stats, cols, method, o, block, out.lambda_attention);
      L.keep_heads(kept, true);
      L.wo = c.weight.cast<float>();
      if (c.has_bias()) L.bo = c.bias.cast<float>();
      out.attention = c.report;
      out.det_attention = det_sign(c);
      out.attention_pruned = true;
    }
  }
  // down_proj: channels.
  {
    const Index F = L.ffn();
    const Eigen::VectorXd cs = unit_scores(L.w_down, pass.d_stats, o.score, 1, GroupReduce::automatic, Module::mlp);
    const Index r0 = o.removed_channels.empty() ? removed_count(F, o.channels_ratio())
                                                : std::min(o.removed_channels[std::size_t(l)], F - 1);
    const Index r = F - rounded_keep(F, F - r0, 1, o.round_to);
    if (r > 0) {
      const std::vector<Index> kept = keep_top(cs, F - r);
      const Compensation method = o.compensate_mlp ? o.compensation : Compensation::none;
      Compensated<double> c = compensate_module(L.w_down, L.b_down, pass.d_stats, kept, method, o, 0, out.lambda_mlp);
      L.keep_channels(kept);
      L.w_down = c.weight.cast<float>();
      if (c.has_bias()) L.b_down = c.bias.cast<float>();
      out.mlp = c.report;
      out.det_mlp = det_sign(c);
      out.mlp_pruned = true;
    }
  }
  out.kept_heads = L.head_ids;
  out.kept_channels = L.channel_ids;
  out.heads = L.n_heads();
  out.kv_heads = L.n_kv_heads();
  out.channels = L.ffn();
  out.parameters = layer_parameters(L);
  return L;
}

inline void log_layer(std::ostream& os, const PipelineOptions& o, const LayerOutcome& r, Index n_layers,
                      Index dense_heads, Index dense_kv, Index dense_ffn) {
  std::ostringstream line;
  line << "  [" << (o.label.empty() ? "pipeline" : o.label) << "] layer " << (r.layer + 1) << "/" << n_layers << ": heads "
       << r.heads << "/" << dense_heads << " (kv " << r.kv_heads << "/" << dense_kv << "), channels " << r.channels << "/"
       << dense_ffn << std::setprecision(3);
  if (r.attention_pruned)
    line << "; o_proj err " << r.attention.before.relative_error << " -> " << r.attention.after.relative_error;
  if (r.mlp_pruned) line << "; down_proj err " << r.mlp.before.relative_error << " -> " << r.mlp.after.relative_error;
  line << std::fixed << std::setprecision(2) << "; " << r.seconds() << " s";
  if (r.shared_with > 1) line << " (dense pass shared by " << r.shared_with << ")";
  for (const LayerReport* rep : {&r.attention, &r.mlp})
    if (rep->underdetermined)
      line << "\n  warning: layer " << (r.layer + 1) << " " << (rep == &r.attention ? "o_proj" : "down_proj") << ": "
           << rep->tokens << " calibration tokens < " << rep->kept_columns
           << " kept columns: the compensated weight is not unique (calibrate on more tokens)";
  os << line.str() << "\n" << std::flush;
}

}  // namespace detail

/// Deterministic pseudo-random generator (splitmix64): the same windows on every platform and
/// standard library (std::uniform_int_distribution is not portable).
class WindowSampler {
 public:
  explicit WindowSampler(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (n >= 1), by rejection (no modulo bias).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }

 private:
  std::uint64_t m_state;
};

/// Start offsets of `count` random windows of `window` tokens inside tokens [first, last), drawn
/// independently (windows may overlap, as in the RCPU authors' calibration loader), fixed by `seed`.
/// \throws rcpu::invalid_argument if the range holds no window.
inline std::vector<Index> random_windows(Index first, Index last, Index window, Index count, std::uint64_t seed) {
  rcpu::detail::require(window >= 1 && count >= 0 && first >= 0 && last - first >= window,
                        "random_windows: [" + std::to_string(first) + ", " + std::to_string(last) +
                            ") holds no window of " + std::to_string(window) + " tokens");
  WindowSampler rng(seed);
  std::vector<Index> starts(static_cast<std::size_t>(count));
  for (auto& s : starts) s = first + Index(rng.below(std::uint64_t(last - first - window + 1)));
  return starts;
}

/// The token ids of windows (concatenated, in the order of `starts`).
inline std::vector<std::int32_t> gather_windows(const std::vector<std::int32_t>& tokens,
                                                const std::vector<Index>& starts, Index window) {
  std::vector<std::int32_t> out;
  out.reserve(starts.size() * static_cast<std::size_t>(window));
  for (Index s : starts) {
    rcpu::detail::require(s >= 0 && s + window <= Index(tokens.size()),
                          "gather_windows: window at " + std::to_string(s) + " runs past the " +
                              std::to_string(tokens.size()) + " tokens");
    out.insert(out.end(), tokens.begin() + s, tokens.begin() + s + window);
  }
  return out;
}

namespace detail {

// flap_scores() on dense layers from any source, `h` the embedded calibration windows.
inline FlapScores flap_scores(const DenseLayers& dense, Eigen::MatrixXf h, Index seq_len, Index chunk_windows,
                              const StatisticsReducer& reduce) {
  FlapScores s;
  Eigen::MatrixXf next(h.rows(), h.cols());
  DensePass pass;
  for (Index l = 0; l < dense.config.n_layers; ++l) {
    const LlamaLayer& L = dense.layer(l);
    run_dense_pass(dense.config, L, l, h, seq_len, chunk_windows, false, false, false, pass, &next);
    if (reduce) {
      reduce(pass.o_stats);
      reduce(pass.d_stats);
    }
    std::swap(h, next);
    s.heads.push_back(unit_scores(L.wo, pass.o_stats, Score::flap, L.head_dim, GroupReduce::standardized_mean,
                                  Module::attention));
    s.channels.push_back(unit_scores(L.w_down, pass.d_stats, Score::flap, 1, GroupReduce::standardized_mean, Module::mlp));
    if (dense.release) dense.release(l);
  }
  return s;
}

}  // namespace detail

/// FLAP's scores of the dense model: one dense pass over the calibration windows, diagonal statistics
/// at the o_proj and down_proj inputs of every layer, WIFV scores standardised per layer and module
/// (a head: the mean of its standardised columns, whose metric FLAP squares again).
inline FlapScores flap_scores(const LlamaModel& dense, const std::vector<std::int32_t>& calibration, Index seq_len,
                              Index chunk_windows = 32, const StatisticsReducer& reduce = {}) {
  detail::check_calibration(dense.config(), calibration, seq_len, "flap_scores");
  return detail::flap_scores(detail::dense_layers_of(dense), dense.embed(calibration), seq_len, chunk_windows, reduce);
}

/// The parameters of one query head in units of one MLP channel's (3 d), for FLAP's allocation: q rows
/// and o columns (2 d head_dim) plus its share of its KV head's k and v rows (2 d head_dim / group).
/// FLAP's LLaMA-7B value 512/3 is this formula for plain multi-head attention with head_dim 128.
inline double flap_head_cost(const LlamaConfig& c) {
  return (2.0 + 2.0 * double(c.n_kv_heads) / double(c.n_heads)) * double(c.head_dim) / 3.0;
}

/// FLAP's AL-AM allocation: all heads and channels of all layers ranked by their standardised score,
/// a head counting `head_cost` channels; the best units are kept up to the one at which their
/// cumulative cost comes closest to (1 - ratio) of the total (FLAP's code keeps the units strictly
/// above that unit's score, one unit fewer; rcpu keeps it, so that ratio 0 keeps everything). Ties
/// rank the earlier layer, heads before channels, lower index first. rcpu keeps at least one head and
/// one channel per layer (FLAP would drop a whole module).
/// \throws rcpu::invalid_argument on a ratio outside [0, 1), head_cost <= 0 or empty scores.
inline LayerBudget flap_allocation(const FlapScores& s, double ratio, double head_cost) {
  rcpu::detail::require_ratio(ratio, "flap_allocation: ratio");
  rcpu::detail::require(head_cost > 0 && std::isfinite(head_cost), "flap_allocation: head_cost must be > 0");
  rcpu::detail::require(!s.heads.empty() && s.heads.size() == s.channels.size(),
                        "flap_allocation: scores of " + std::to_string(s.heads.size()) + " and " +
                            std::to_string(s.channels.size()) + " layers");
  struct Unit {
    double score, cost;
    std::size_t layer;
    bool head;
  };
  std::vector<Unit> units;
  double total = 0;
  for (std::size_t l = 0; l < s.heads.size(); ++l) {
    for (Index i = 0; i < s.heads[l].size(); ++i) units.push_back({s.heads[l](i), head_cost, l, true});
    for (Index i = 0; i < s.channels[l].size(); ++i) units.push_back({s.channels[l](i), 1.0, l, false});
  }
  for (const Unit& u : units) total += u.cost;
  std::vector<std::size_t> order(units.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return units[a].score > units[b].score; });
  const double target = (1.0 - ratio) * total;
  double cum = 0, best = -1;
  std::size_t at = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    cum += units[order[i]].cost;
    const double gap = std::abs(cum - target);
    if (best < 0 || gap < best) {
      best = gap;
      at = i;
    }
  }
  LayerBudget b;
  const std::size_t L = s.heads.size();
  std::vector<Index> kept_h(L, 0), kept_c(L, 0);
  for (std::size_t i = 0; i <= at; ++i) {
    const Unit& u = units[order[i]];
    ++(u.head ? kept_h : kept_c)[u.layer];
  }
  double kept_cost = 0;
  for (std::size_t l = 0; l < L; ++l) {
    kept_h[l] = std::max<Index>(kept_h[l], 1);
    kept_c[l] = std::max<Index>(kept_c[l], 1);
    b.heads_removed.push_back(s.heads[l].size() - kept_h[l]);
    b.channels_removed.push_back(s.channels[l].size() - kept_c[l]);
    kept_cost += double(kept_h[l]) * head_cost + double(kept_c[l]);
  }
  b.retained_cost_fraction = kept_cost / total;
  return b;
}

namespace detail {

// prune_models() on dense layers from any source (DenseLayers), `embedded` the calibration windows'
// hidden states; each pruned layer goes to `sink`. The results have no model (PipelineResult::model
// is left empty); their parameter counts are those of the pruned model.
inline std::vector<PipelineResult> prune_layers(const DenseLayers& dense, Eigen::MatrixXf embedded,
                                                const std::vector<PipelineOptions>& configs, std::ostream* log,
                                                const LayerCallback& on_layer, const StatisticsReducer& reduce,
                                                const PrunedLayerSink& sink) {
  const Index seq_len = configs.front().seq_len;
  const LlamaConfig& cfg = dense.config;
  const std::size_t n_cfg = configs.size();
  std::vector<PipelineOptions> opts = configs;
  std::vector<PipelineResult> results(n_cfg);
  Index dense_layer_parameters = 0;

  // FLAP's allocation: one scoring pass, shared by every adaptive configuration.
  bool any_adaptive = false;
  for (const PipelineOptions& o : opts) any_adaptive = any_adaptive || (o.allocation == Allocation::flap_adaptive && o.removed_heads.empty());
  if (any_adaptive) {
    const auto t0 = std::chrono::steady_clock::now();
    if (log) *log << "  FLAP allocation: scoring the dense model on " << embedded.rows() / seq_len << " windows\n";
    const FlapScores fs = flap_scores(dense, embedded, seq_len, opts.front().chunk_windows, reduce);
    const double secs = seconds_since(t0);
    for (std::size_t c = 0; c < n_cfg; ++c) {
      PipelineOptions& o = opts[c];
      if (o.allocation != Allocation::flap_adaptive || !o.removed_heads.empty()) continue;
      const LayerBudget b = flap_allocation(fs, o.ratio, flap_head_cost(cfg));
      o.removed_heads = b.heads_removed;
      o.removed_channels = b.channels_removed;
      results[c].seconds_allocation = secs;
    }
  }

  // A branch: hidden states shared by its members. The first branch holds the embeddings, which are
  // the dense model's states at layer 0; from there on, dense-statistics members stay in one branch
  // that follows the dense states (the dense pass writes them), and pruned-prefix members split into
  // branches whose states the pruned passes write (never the dense one's: the pruned pass of an
  // unchanged layer need not equal the dense layer bit for bit).
  struct Branch {
    Eigen::MatrixXf hidden;
    std::vector<std::size_t> members;
  };
  std::vector<Branch> branches(1);
  branches[0].hidden = std::move(embedded);
  branches[0].members.resize(n_cfg);
  std::iota(branches[0].members.begin(), branches[0].members.end(), std::size_t(0));
  const Index chunk = opts.front().chunk_windows;
  const auto dense_statistics = [&](std::size_t c) { return opts[c].statistics == StatisticsSource::dense; };

  for (Index l = 0; l < cfg.n_layers; ++l) {
    const LlamaLayer& D = dense.layer(l);
    dense_layer_parameters += layer_parameters(D);
    std::vector<Branch> next;
    for (Branch& br : branches) {
      bool gram_o = false, gram_d = false, any_prefix = false, any_dense = false;
      for (std::size_t c : br.members) {
        gram_o = gram_o || detail::needs_gram_for(opts[c], true);
        gram_d = gram_d || detail::needs_gram_for(opts[c], false);
        (dense_statistics(c) ? any_dense : any_prefix) = true;
      }
      // Dense-statistics members need the dense layer's output; pruned-prefix members need the
      // branch's states (the pruned pass's residual) and the attention output. Without pruned-prefix
      // members the dense output overwrites the states in place (run_dense_pass reads each chunk
      // before it writes it).
      const bool dense_next = any_dense && l + 1 < cfg.n_layers;
      Eigen::MatrixXf dense_hidden;
      if (dense_next && any_prefix) dense_hidden.resize(br.hidden.rows(), br.hidden.cols());
      Eigen::MatrixXf* const dense_out = !dense_next ? nullptr : any_prefix ? &dense_hidden : &br.hidden;
      const auto t0 = std::chrono::steady_clock::now();
      DensePass pass;
      run_dense_pass(cfg, D, l, br.hidden, seq_len, chunk, gram_o, gram_d, any_prefix, pass, dense_out);
      if (reduce) {
        reduce(pass.o_stats);
        reduce(pass.d_stats);
      }
      const double t_dense = seconds_since(t0);

      std::vector<LlamaLayer> cand;
      std::vector<LayerOutcome> outc(br.members.size());
      for (std::size_t i = 0; i < br.members.size(); ++i) {
        const auto t1 = std::chrono::steady_clock::now();
        // One configuration alone consumes a layer its source owns (D is not used after this).
        LlamaLayer* const own = dense.owned && n_cfg == 1 ? dense.owned(l) : nullptr;
        cand.push_back(prune_layer_once(own != nullptr ? std::move(*own) : LlamaLayer(D), pass, opts[br.members[i]], l,
                                        outc[i]));
        outc[i].seconds_prune = seconds_since(t1);
        outc[i].seconds_dense = t_dense;
        outc[i].seconds_statistics = pass.seconds_statistics;
        outc[i].shared_with = Index(br.members.size());
      }
      // Dense-statistics members: one branch on the dense states of layer l + 1.
      if (any_dense) {
        Branch nb;
        if (dense_next) nb.hidden = any_prefix ? std::move(dense_hidden) : std::move(br.hidden);
        for (std::size_t i = 0; i < br.members.size(); ++i)
          if (dense_statistics(br.members[i])) nb.members.push_back(br.members[i]);
        next.push_back(std::move(nb));
      }
      // Groups of pruned-prefix members with identical pruned layers.
      std::vector<std::vector<std::size_t>> groups;
      for (std::size_t i = 0; i < cand.size(); ++i) {
        if (dense_statistics(br.members[i])) continue;
        bool placed = false;
        for (auto& g : groups)
          if (same_layer(cand[g.front()], cand[i])) {
            g.push_back(i);
            placed = true;
            break;
          }
        if (!placed) groups.push_back({i});
      }
      for (std::size_t gi = 0; gi < groups.size(); ++gi) {
        const auto t2 = std::chrono::steady_clock::now();
        Branch nb;
        // The last group takes the branch's states: no copy when nobody else needs them.
        if (gi + 1 == groups.size())
          nb.hidden = std::move(br.hidden);
        else
          nb.hidden = br.hidden;
        run_pruned_pass(cand[groups[gi].front()], pass.attention, cfg.rms_eps, seq_len, chunk, nb.hidden);
        const double t_fwd = seconds_since(t2);
        for (std::size_t i : groups[gi]) {
          outc[i].seconds_forward = t_fwd;
          nb.members.push_back(br.members[i]);
        }
        next.push_back(std::move(nb));
      }
      for (std::size_t i = 0; i < br.members.size(); ++i) {
        const std::size_t c = br.members[i];
        if (log) log_layer(*log, opts[c], outc[i], cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn);
        results[c].layers.push_back(std::move(outc[i]));
        sink(c, l, std::move(cand[i]));
      }
    }
    branches = std::move(next);
    if (dense.release) dense.release(l);
    if (on_layer) on_layer(l, cfg.n_layers);
  }

  for (std::size_t c = 0; c < n_cfg; ++c) {
    PipelineResult& r = results[c];
    r.options = configs[c];
    r.options.removed_heads = opts[c].removed_heads;
    r.options.removed_channels = opts[c].removed_channels;
    r.parameters_dense = outer_parameters(cfg) + dense_layer_parameters;
    r.parameters = outer_parameters(cfg);
    r.seconds = r.seconds_allocation;
    for (const LayerOutcome& o : r.layers) {
      r.parameters += o.parameters;
      r.seconds += o.seconds();
    }
  }
  return results;
}

}  // namespace detail

/// Prunes several configurations of the same dense model on the same calibration windows, in
/// lockstep: configurations whose pruned layers 0..l are bit-for-bit identical share the hidden states
/// and the dense pass of layer l + 1; configurations with dense statistics (any method) share the dense
/// states and every dense pass. Results are those of prune_model() run on each one alone.
/// \param dense        the dense model (not modified)
/// \param calibration  calibration token ids: consecutive windows of options.seq_len tokens
/// \param configs      one PipelineOptions per configuration (all with the same seq_len)
/// \param log          per-layer progress lines (none when null)
/// \param on_layer     called after each layer (for a progress bar / ETA)
/// \param reduce       applied to the statistics of every dense pass (StatisticsReducer), if set
/// \throws rcpu::invalid_argument on bad options or calibration.
inline std::vector<PipelineResult> prune_models(const LlamaModel& dense, const std::vector<std::int32_t>& calibration,
                                                const std::vector<PipelineOptions>& configs,
                                                std::ostream* log = nullptr, const LayerCallback& on_layer = {},
                                                const StatisticsReducer& reduce = {}) {
  detail::check_configs(dense.config(), calibration, configs, "prune_models");
  const LlamaConfig& cfg = dense.config();
  std::vector<std::vector<LlamaLayer>> layers(configs.size());
  std::vector<PipelineResult> results =
      detail::prune_layers(detail::dense_layers_of(dense), dense.embed(calibration), configs, log, on_layer, reduce,
                           [&](std::size_t c, Index, LlamaLayer&& L) { layers[c].push_back(std::move(L)); });
  for (std::size_t c = 0; c < configs.size(); ++c)
    results[c].model = LlamaModel::from_weights(cfg, dense.embedding(), std::move(layers[c]), dense.output_norm(),
                                                cfg.tied_output ? Eigen::MatrixXf() : dense.output_weight());
  return results;
}

/// Prunes one configuration (see prune_models() and the file comment).
inline PipelineResult prune_model(const LlamaModel& dense, const std::vector<std::int32_t>& calibration,
                                  const PipelineOptions& options, std::ostream* log = nullptr,
                                  const LayerCallback& on_layer = {}, const StatisticsReducer& reduce = {}) {
  return std::move(prune_models(dense, calibration, {options}, log, on_layer, reduce).front());
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_PIPELINE_HPP
