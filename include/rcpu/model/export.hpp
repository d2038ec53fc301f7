// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_EXPORT_HPP
#define RCPU_MODEL_EXPORT_HPP

/// \file export.hpp
/// A (pruned) LlamaModel written as a GGUF file that llama.cpp loads and runs, and that
/// LlamaModel::from_gguf() reads back.
///
/// - Architecture: plain `llama` when every layer has the same numbers of query heads, KV heads and
///   MLP channels and no output bias (llama.cpp builds every `llama` layer from layer 0's sizes);
///   otherwise `deci`, whose head_count, head_count_kv and feed_forward_length are per-layer arrays
///   that llama.cpp uses both for the tensor shapes and in the graph, with the same tensor names and
///   RoPE as `llama` and optional blk.N.attn_output.bias / blk.N.ffn_down.bias (so bias
///   compensations export as they are). key_length, value_length and rope.dimension_count are
///   written explicitly (llama.cpp would derive them from layer 0's head count).
/// - Grouped-query attention must be uniform per layer in llama.cpp: query head h reads KV head
///   h / (n_head / n_head_kv), and an uneven layer aborts the process. A pruned layer whose KV groups
///   lost different numbers of query heads is rewritten exactly (the same function of its input) by
///   make_uniform_gqa(): groups of S query heads per written KV head, a group of s heads becoming
///   ceil(s / S) KV heads (copies of its KV head) and zero query heads to fill the last one (zero
///   rows of wq, zero columns of wo: a zero head contributes exactly 0). S = max group size only pads
///   (the KV cache does not grow); S = gcd only duplicates KV heads; GqaFix::cheapest takes the S
///   with the fewest written parameters.
/// - Tensor types: 2-D weights in ExportOptions::type; norms and biases in F32 (as llama.cpp's own
///   converter does). A weight whose rows do not fill the type's blocks (Q8_0, Q4_0: multiples of 32)
///   is written F16 and listed in the report (round the kept units with PipelineOptions::round_to to
///   avoid it).
/// - Metadata: the source file's keys are copied verbatim (tokenizer.* and general.*; the source
///   architecture's own keys under the new architecture's name), except those export writes itself;
///   ExportOptions::metadata adds more (provenance() gives rcpu.* keys of a pipeline result).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "../io/gguf_writer.hpp"
#include "llama.hpp"
#include "pipeline.hpp"

namespace rcpu {
namespace model {

/// How export makes a layer's grouped-query attention uniform (see the file comment).
enum class GqaFix {
  cheapest,      ///< the group size with the fewest written parameters (ties: the larger group, less KV cache)
  pad_queries,   ///< zero query heads up to the largest group; the KV heads as they are
  duplicate_kv   ///< copies of KV heads, groups of gcd(group sizes) query heads; no padding
};

inline const char* to_string(GqaFix f) {
  switch (f) {
    case GqaFix::cheapest: return "cheapest";
    case GqaFix::pad_queries: return "pad_queries";
    case GqaFix::duplicate_kv: return "duplicate_kv";
  }
  return "unknown";
}
/// Parses the names printed by to_string(GqaFix). \throws rcpu::invalid_argument if unknown.
inline GqaFix gqa_fix_from_string(const std::string& s) {
  for (GqaFix f : {GqaFix::cheapest, GqaFix::pad_queries, GqaFix::duplicate_kv})
    if (s == to_string(f)) return f;
  rcpu::detail::fail("unknown GQA fix '" + s + "' (cheapest, pad_queries, duplicate_kv)");
}

/// The uniform layout of one layer's attention as written.
struct UniformGqa {
  Index group = 0;          ///< query heads per written KV head
  Index heads = 0;          ///< query heads written (real + zero)
  Index kv_heads = 0;       ///< KV heads written (distinct + copies)
  Index zero_heads = 0;     ///< zero query heads added
  Index kv_copies = 0;      ///< KV heads written more than once (extra copies)
  bool changed() const { return zero_heads != 0 || kv_copies != 0; }
};

/// The layout `fix` gives a layer whose query head i reads KV head head_kv[i] (of n_kv).
/// \throws rcpu::invalid_argument if a KV head is out of range or no query head is left.
inline UniformGqa plan_uniform_gqa(const std::vector<Index>& head_kv, Index n_kv, GqaFix fix) {
  rcpu::detail::require(!head_kv.empty() && n_kv >= 1, "plan_uniform_gqa: a layer needs a query head and a KV head");
  std::vector<Index> size(static_cast<std::size_t>(n_kv), 0);
  for (const Index g : head_kv) {
    rcpu::detail::require(g >= 0 && g < n_kv, "plan_uniform_gqa: KV head " + std::to_string(g) + " is outside [0, " +
                                                  std::to_string(n_kv) + ")");
    ++size[static_cast<std::size_t>(g)];
  }
  Index smax = 0, sgcd = 0;
  for (const Index s : size)
    if (s > 0) {
      smax = std::max(smax, s);
      sgcd = std::gcd(sgcd, s);
    }
  const auto layout = [&](Index S) {
    UniformGqa u;
    u.group = S;
    Index used = 0;
    for (const Index s : size) {
      if (s == 0) continue;
      ++used;
      const Index chunks = (s + S - 1) / S;
      u.kv_heads += chunks;
      u.heads += chunks * S;
    }
    u.zero_heads = u.heads - Index(head_kv.size());
    u.kv_copies = u.kv_heads - used;
    return u;
  };
  if (fix == GqaFix::pad_queries) return layout(smax);
  if (fix == GqaFix::duplicate_kv) return layout(sgcd);
  UniformGqa best = layout(smax);
  for (Index S = smax - 1; S >= 1; --S) {
    const UniformGqa u = layout(S);
    if (u.heads + u.kv_heads < best.heads + best.kv_heads) best = u;  // q+o and k+v rows cost the same
  }
  return best;
}

/// The layer rewritten with the layout of plan_uniform_gqa(): query heads grouped by KV head (group
/// after group, in the order of their KV heads), each chunk of `group` query heads with its own copy
/// of the KV head and zero heads at the end of a group's last chunk. The result computes the same
/// function of its input (up to the order of the sums in o_proj); head_ids of zero heads are -1.
inline LlamaLayer make_uniform_gqa(const LlamaLayer& L, GqaFix fix, UniformGqa* plan = nullptr) {
  const UniformGqa u = plan_uniform_gqa(L.head_kv, L.n_kv_heads(), fix);
  if (plan != nullptr) *plan = u;
  const Index hd = L.head_dim, d = L.wq.cols(), S = u.group;
  LlamaLayer out = L;
  out.wq = Eigen::MatrixXf::Zero(u.heads * hd, d);
  out.wo = Eigen::MatrixXf::Zero(L.wo.rows(), u.heads * hd);
  out.wk.resize(u.kv_heads * hd, d);
  out.wv.resize(u.kv_heads * hd, d);
  out.head_kv.assign(static_cast<std::size_t>(u.heads), 0);
  out.head_ids.assign(static_cast<std::size_t>(u.heads), -1);
  Index qh = 0, kvh = 0;
  for (Index g = 0; g < L.n_kv_heads(); ++g) {
    std::vector<Index> members;
    for (Index h = 0; h < L.n_heads(); ++h)
      if (L.head_kv[std::size_t(h)] == g) members.push_back(h);
    for (std::size_t m0 = 0; m0 < members.size(); m0 += std::size_t(S)) {
      out.wk.middleRows(kvh * hd, hd) = L.wk.middleRows(g * hd, hd);
      out.wv.middleRows(kvh * hd, hd) = L.wv.middleRows(g * hd, hd);
      for (Index j = 0; j < S; ++j, ++qh) {
        out.head_kv[std::size_t(qh)] = kvh;
        const std::size_t m = m0 + std::size_t(j);
        if (m >= members.size()) continue;  // a zero head
        const Index h = members[m];
        out.wq.middleRows(qh * hd, hd) = L.wq.middleRows(h * hd, hd);
        out.wo.middleCols(qh * hd, hd) = L.wo.middleCols(h * hd, hd);
        out.head_ids[std::size_t(qh)] = L.head_ids.empty() ? h : L.head_ids[std::size_t(h)];
      }
      ++kvh;
    }
  }
  return out;
}

/// Whether a layer already has llama.cpp's layout: query head h reads KV head h / (n_heads / n_kv).
inline bool has_uniform_gqa(const LlamaLayer& L) {
  const Index H = L.n_heads(), K = L.n_kv_heads();
  if (K == 0 || H % K != 0) return false;
  for (Index h = 0; h < H; ++h)
    if (L.head_kv[std::size_t(h)] != h / (H / K)) return false;
  return true;
}

/// How to write a model.
struct ExportOptions {
  /// Type of the 2-D weights (token embedding and output head included): f32, f16, bf16, q8_0, q4_0.
  io::GgmlType type = io::GgmlType::f32;
  /// A weight whose rows do not fill `type`'s blocks is written F16 (false: export throws instead).
  bool fallback_f16 = true;
  GqaFix gqa_fix = GqaFix::cheapest;
  /// Extra metadata, written after everything else (replacing a key of the same name).
  std::vector<std::pair<std::string, io::GgufValue>> metadata;
};

/// What export wrote.
struct ExportReport {
  std::string architecture;           ///< "llama" or "deci"
  std::vector<UniformGqa> attention;  ///< per layer, as written
  std::vector<Index> channels;        ///< MLP channels per layer
  std::vector<std::string> f16_fallback;  ///< weights written F16 because their rows did not fill `type`'s blocks
  Index parameters = 0;               ///< parameters written (zero heads and KV copies included; a tied head once)
  std::uint64_t file_bytes = 0;       ///< size of the file
};

/// llama.cpp's general.file_type of a file whose weights are mostly `t` (LLAMA_FTYPE_*).
inline std::uint32_t llama_file_type(io::GgmlType t) {
  switch (t) {
    case io::GgmlType::f32: return 0;
    case io::GgmlType::f16: return 1;
    case io::GgmlType::q4_0: return 2;
    case io::GgmlType::q8_0: return 7;
    case io::GgmlType::bf16: return 32;
    default: break;
  }
  rcpu::detail::fail(std::string("llama_file_type: rcpu does not write ") + io::to_string(t));
}

/// A writer holding `model` as a GGUF file (see the file comment); `source` (may be null) gives the
/// tokenizer and general metadata. The writer reads the embedding, norms and output head from
/// `model` when it writes: `model` must outlive the writer's write().
/// \throws rcpu::invalid_argument for a type rcpu cannot write, a weight that does not fit it
///         (fallback_f16 off), or a model llama.cpp cannot represent.
inline io::GgufWriter gguf_writer(const LlamaModel& model, const io::GgufFile* source, const ExportOptions& o,
                                  ExportReport* report = nullptr) {
  const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(o.type));
  rcpu::detail::require(tt != nullptr && tt->quantizable,
                        std::string("export: cannot write weights of type ") + io::to_string(o.type) +
                            " (f32, f16, bf16, q8_0, q4_0)");
  model.validate();
  const LlamaConfig& c = model.config();
  ExportReport rep;
  auto layers = std::make_shared<std::vector<LlamaLayer>>();
  layers->reserve(model.layers().size());
  bool uniform = true, biases = false;
  for (const LlamaLayer& L : model.layers()) {
    UniformGqa u;
    if (has_uniform_gqa(L)) {
      layers->push_back(L);
      u.group = L.n_heads() / L.n_kv_heads();
      u.heads = L.n_heads();
      u.kv_heads = L.n_kv_heads();
    } else {
      layers->push_back(make_uniform_gqa(L, o.gqa_fix, &u));
    }
    const LlamaLayer& W = layers->back();
    const LlamaLayer& F = layers->front();
    uniform = uniform && W.n_heads() == F.n_heads() && W.n_kv_heads() == F.n_kv_heads() && W.ffn() == F.ffn();
    biases = biases || W.bo.size() != 0 || W.b_down.size() != 0;
    rep.attention.push_back(u);
    rep.channels.push_back(W.ffn());
  }
  rep.architecture = uniform && !biases ? "llama" : "deci";
  const std::string a = rep.architecture + ".";

  io::GgufWriter w;
  w.set_string("general.architecture", rep.architecture);
  // Keys export writes itself (under any architecture's name).
  const std::set<std::string> own = {"context_length", "embedding_length", "block_count", "feed_forward_length",
                                     "attention.head_count", "attention.head_count_kv", "attention.key_length",
                                     "attention.value_length", "rope.dimension_count", "rope.freq_base",
                                     "attention.layer_norm_rms_epsilon", "vocab_size"};
  if (source != nullptr) {
    const std::string src_arch = source->get_string("general.architecture", "");
    for (const auto& kv : source->metadata()) {
      const std::string& key = kv.first;
      if (key == "general.architecture" || key == "general.alignment" || key == "general.file_type" ||
          key.compare(0, 5, "rcpu.") == 0)
        continue;
      if (!src_arch.empty() && key.compare(0, src_arch.size() + 1, src_arch + ".") == 0) {
        const std::string rest = key.substr(src_arch.size() + 1);
        if (!own.count(rest)) w.set(a + rest, kv.second);
        continue;
      }
      w.set(key, kv.second);
    }
  }
  w.set_u32("general.file_type", llama_file_type(o.type));
  w.set_u32("general.quantization_version", 2);
  if (c.context > 0) w.set_u32(a + "context_length", static_cast<std::uint32_t>(c.context));
  w.set_u32(a + "embedding_length", static_cast<std::uint32_t>(c.d_model));
  w.set_u32(a + "block_count", static_cast<std::uint32_t>(c.n_layers));
  w.set_u32(a + "vocab_size", static_cast<std::uint32_t>(c.vocab));
  std::vector<std::int64_t> heads, kvs, ffn;
  for (const LlamaLayer& L : *layers) {
    heads.push_back(L.n_heads());
    kvs.push_back(L.n_kv_heads());
    ffn.push_back(L.ffn());
  }
  if (rep.architecture == "llama") {
    w.set_u32(a + "feed_forward_length", static_cast<std::uint32_t>(ffn.front()));
    w.set_u32(a + "attention.head_count", static_cast<std::uint32_t>(heads.front()));
    w.set_u32(a + "attention.head_count_kv", static_cast<std::uint32_t>(kvs.front()));
  } else {
    w.set(a + "feed_forward_length", io::GgufValue::make_int_array(io::GgufValueType::int32, ffn));
    w.set(a + "attention.head_count", io::GgufValue::make_int_array(io::GgufValueType::int32, heads));
    w.set(a + "attention.head_count_kv", io::GgufValue::make_int_array(io::GgufValueType::int32, kvs));
  }
  w.set_u32(a + "attention.key_length", static_cast<std::uint32_t>(c.head_dim));
  w.set_u32(a + "attention.value_length", static_cast<std::uint32_t>(c.head_dim));
  w.set_u32(a + "rope.dimension_count", static_cast<std::uint32_t>(c.n_rot));
  w.set_f32(a + "rope.freq_base", static_cast<float>(c.rope_base));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", c.rms_eps);
  for (const auto& kv : o.metadata) w.set(kv.first, kv.second);

  // Tensors: encoded when the file is written, from matrices that live in `layers` or `model`.
  const auto weight_type = [&](const std::string& name, Index row) {
    if (row % Index(tt->block_size) == 0) return o.type;
    rcpu::detail::require(o.fallback_f16, "export: weight '" + name + "' has rows of " + std::to_string(row) +
                                              " values, not a multiple of the " + tt->name + " block size " +
                                              std::to_string(tt->block_size) + " (round the kept units, or allow F16)");
    rep.f16_fallback.push_back(name);
    return io::GgmlType::f16;
  };
  const auto add_matrix = [&](const std::string& name, const Eigen::MatrixXf* m, io::GgmlType type) {
    w.add_tensor_source(name, type, {std::uint64_t(m->cols()), std::uint64_t(m->rows())}, [m, type, layers](std::uint8_t* out) {
      const Eigen::MatrixXf t = m->transpose();  // row-major W
      io::quantize(type, t.data(), std::uint64_t(t.size()), out);
    });
    rep.parameters += m->size();
  };
  const auto add_weight = [&](const std::string& name, const Eigen::MatrixXf* m) {
    add_matrix(name, m, weight_type(name, m->cols()));
  };
  const auto add_vector = [&](const std::string& name, const Eigen::VectorXf* v) {
    w.add_tensor_source(name, io::GgmlType::f32, {std::uint64_t(v->size())}, [v, layers](std::uint8_t* out) {
      io::quantize(io::GgmlType::f32, v->data(), std::uint64_t(v->size()), out);
    });
    rep.parameters += v->size();
  };
  add_weight("token_embd.weight", &model.embedding());
  add_vector("output_norm.weight", &model.output_norm());
  if (!c.tied_output) add_weight("output.weight", &model.output_weight());
  for (std::size_t l = 0; l < layers->size(); ++l) {
    const LlamaLayer& L = (*layers)[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    add_vector(p + "attn_norm.weight", &L.attn_norm);
    add_weight(p + "attn_q.weight", &L.wq);
    add_weight(p + "attn_k.weight", &L.wk);
    add_weight(p + "attn_v.weight", &L.wv);
    add_weight(p + "attn_output.weight", &L.wo);
    if (L.bo.size() != 0) add_vector(p + "attn_output.bias", &L.bo);
    add_vector(p + "ffn_norm.weight", &L.ffn_norm);
    add_weight(p + "ffn_gate.weight", &L.w_gate);
    add_weight(p + "ffn_up.weight", &L.w_up);
    add_weight(p + "ffn_down.weight", &L.w_down);
    if (L.b_down.size() != 0) add_vector(p + "ffn_down.bias", &L.b_down);
  }
  rep.file_bytes = w.file_size();
  if (report != nullptr) *report = std::move(rep);
  return w;
}

/// A writer would point into a temporary model: refused at compile time.
io::GgufWriter gguf_writer(LlamaModel&& model, const io::GgufFile* source, const ExportOptions& o,
                           ExportReport* report = nullptr) = delete;

/// Where a pruned model's calibration came from, for provenance().
struct CalibrationInfo {
  std::string text;         ///< the calibration text (a file name, say)
  Index windows = 0;        ///< windows of seq_len tokens
  Index seq_len = 0;
  std::uint64_t seed = 0;
};

/// rcpu.* metadata that records how a pipeline result was made: rcpu's version, the method (label,
/// score, compensation, ratios, GQA rule, allocation, rounding, ridge strength), the calibration,
/// parameter counts, and per layer the kept query heads and MLP channels (dense indices).
inline std::vector<std::pair<std::string, io::GgufValue>> provenance(const PipelineResult& r, const CalibrationInfo& calib) {
  using io::GgufValue;
  using io::GgufValueType;
  std::vector<std::pair<std::string, GgufValue>> m;
  const auto str = [&](const std::string& k, const std::string& v) { m.emplace_back("rcpu." + k, GgufValue::make_string(v)); };
  const auto u64 = [&](const std::string& k, std::uint64_t v) {
    m.emplace_back("rcpu." + k, GgufValue::make_uint(GgufValueType::uint64, v));
  };
  const auto f64 = [&](const std::string& k, double v) {
    m.emplace_back("rcpu." + k, GgufValue::make_float(GgufValueType::float64, v));
  };
  const PipelineOptions& o = r.options;
  str("version", std::to_string(RCPU_VERSION_MAJOR) + "." + std::to_string(RCPU_VERSION_MINOR) + "." +
                     std::to_string(RCPU_VERSION_PATCH));
  str("method", o.label);
  str("score", rcpu::to_string(o.score));
  str("compensation", rcpu::to_string(o.compensation));
  f64("ratio", o.ratio);
  f64("attention_ratio", o.heads_ratio());
  f64("mlp_ratio", o.channels_ratio());
  str("gqa_rule", to_string(o.gqa));
  str("allocation", to_string(o.allocation));
  str("o_proj_rotation", to_string(o.o_proj_rotation));
  u64("round_to", std::uint64_t(o.round_to));
  f64("relative_lambda", o.relative_lambda);
  str("calibration.text", calib.text);
  u64("calibration.windows", std::uint64_t(calib.windows));
  u64("calibration.seq_len", std::uint64_t(calib.seq_len));
  u64("calibration.seed", calib.seed);
  u64("parameters_dense", std::uint64_t(r.parameters_dense));
  u64("parameters", std::uint64_t(r.parameters));
  for (const LayerOutcome& l : r.layers) {
    const std::string p = "layer." + std::to_string(l.layer) + ".";
    m.emplace_back("rcpu." + p + "kept_heads",
                   GgufValue::make_int_array(GgufValueType::int32, std::vector<std::int64_t>(l.kept_heads.begin(), l.kept_heads.end())));
    m.emplace_back("rcpu." + p + "kept_channels",
                   GgufValue::make_int_array(GgufValueType::int32,
                                             std::vector<std::int64_t>(l.kept_channels.begin(), l.kept_channels.end())));
  }
  return m;
}

/// Writes `model` as a GGUF file at `path` (staged: a failure leaves no file and an existing one
/// untouched). See gguf_writer().
inline ExportReport export_gguf(const LlamaModel& model, const io::GgufFile* source, const std::string& path,
                                const ExportOptions& o = {}) {
  ExportReport rep;
  const io::GgufWriter w = gguf_writer(model, source, o, &rep);
  w.write(path);
  return rep;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_EXPORT_HPP
