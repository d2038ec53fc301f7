// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_EXPORT_HPP
#define RCPU_MODEL_EXPORT_HPP

/// \file export.hpp
/// A (pruned) LlamaModel written as a GGUF file that llama.cpp loads and runs, and that
/// LlamaModel::from_gguf() reads back.
///
/// - Architecture: plain `llama` when every layer has the same numbers of query heads, KV heads and
///   MLP channels (llama.cpp builds every `llama` layer from layer 0's sizes); otherwise `deci`, whose
///   head_count, head_count_kv and feed_forward_length are per-layer arrays that llama.cpp uses both
///   for the tensor shapes and in the graph, with the same tensor names and RoPE as `llama`. Both
///   take the optional blk.N.attn_output.bias / blk.N.ffn_down.bias, so bias compensations export
///   as they are. key_length, value_length and rope.dimension_count are written explicitly (llama.cpp
///   would derive them from layer 0's head count).
/// - Grouped-query attention must be uniform per layer in llama.cpp: query head h reads KV head
///   h / (n_head / n_head_kv), and an uneven layer aborts the process. Such layers are rewritten
///   exactly by make_uniform_gqa() (gqa.hpp: zero query heads and/or copies of KV heads).
/// - Tensor types: 2-D weights in ExportOptions::type; norms and biases in F32 (as llama.cpp's own
///   converter does). A weight whose rows do not fill the type's blocks (Q8_0, Q4_0: multiples of 32)
///   is written F16 and listed in the report (round the kept units with PipelineOptions::round_to to
///   avoid it).
/// - Metadata: the source file's tokenizer.* and general.* keys are copied verbatim (except those
///   that describe the source file: file type, quantizer, size label), the source architecture's
///   other keys under the new architecture's name; export writes the sizes itself and which dense
///   head each written head is (rcpu.layer.N.written_heads, -1 for a zero head);
///   ExportOptions::metadata adds more (provenance.hpp gives rcpu.* keys of a pipeline result).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "../io/gguf_writer.hpp"
#include "gqa.hpp"
#include "llama.hpp"

namespace rcpu {
namespace model {

/// How to write a model.
struct ExportOptions {
  /// Type of the 2-D weights (token embedding and output head included): f32, f16, bf16, q8_0, q4_0.
  io::GgmlType type = io::GgmlType::f32;
  /// A weight whose rows do not fill `type`'s blocks is written F16 (false: export throws instead).
  bool fallback_f16 = true;
  GqaFix gqa_fix = GqaFix::cheapest;
  /// "llama", "deci", or empty: llama when every layer has the same sizes, deci otherwise. (llama with
  /// different layer sizes is refused: llama.cpp builds every llama layer from layer 0's sizes.)
  std::string architecture;
  /// Extra metadata (e.g. provenance(), provenance.hpp), written last; it may not replace a key that
  /// export writes itself.
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

namespace detail {

// The size keys export writes itself, under the architecture's name.
inline const std::vector<std::string>& export_own_keys() {
  static const std::vector<std::string> k = {
      "context_length",         "embedding_length",       "block_count",          "feed_forward_length",
      "attention.head_count",   "attention.head_count_kv", "attention.key_length", "attention.value_length",
      "rope.dimension_count",   "rope.freq_base",          "attention.layer_norm_rms_epsilon", "vocab_size"};
  return k;
}

inline bool has_nested_array(const io::GgufValue& v) {
  return v.is_array() && v.element_type() == io::GgufValueType::array;
}

// general.* keys that describe the source file rather than the model, and are wrong for the export.
inline bool stale_general_key(const std::string& key) {
  for (const char* k : {"general.architecture", "general.alignment", "general.file_type", "general.quantization_version",
                        "general.quantized_by", "general.size_label"})
    if (key == k) return true;
  return false;
}

inline std::uint32_t context_length(const LlamaModel& model, const io::GgufFile* source) {
  if (model.config().context > 0) return std::uint32_t(model.config().context);
  if (source != nullptr) {
    const std::string arch = source->get_string("general.architecture", "");
    const std::int64_t c = source->get_int(arch + ".context_length", 0);
    if (c > 0 && c <= std::int64_t(UINT32_MAX)) return std::uint32_t(c);
  }
  return 0;
}

}  // namespace detail

/// Checks that `model` can be written with `o` and loaded by llama.cpp, before any work is spent on
/// it (rcpu prune-model calls it on the dense model first). \throws rcpu::invalid_argument for a type
/// rcpu cannot write, rotary dimensions other than head_dim (llama.cpp's llama and deci refuse
/// them), no known context length, an unknown architecture, or metadata that would replace a key
/// export writes itself or that llama.cpp cannot read (nested arrays).
inline void check_exportable(const LlamaModel& model, const io::GgufFile* source, const ExportOptions& o) {
  const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(o.type));
  rcpu::detail::require(tt != nullptr && tt->quantizable, std::string("export: cannot write weights of type ") +
                                                              io::to_string(o.type) + " (f32, f16, bf16, q8_0, q4_0)");
  const LlamaConfig& c = model.config();
  rcpu::detail::require(c.n_rot == c.head_dim, "export: the model rotates " + std::to_string(c.n_rot) + " of " +
                                                   std::to_string(c.head_dim) +
                                                   " dimensions per head; llama.cpp's llama and deci need all of them");
  rcpu::detail::require(detail::context_length(model, source) > 0,
                        "export: the context length is unknown (set LlamaConfig::context or give the source file)");
  rcpu::detail::require(o.architecture.empty() || o.architecture == "llama" || o.architecture == "deci",
                        "export: architecture '" + o.architecture + "' (llama, deci, or empty for automatic)");
  for (const auto& kv : o.metadata) {
    const std::string& key = kv.first;
    bool own = detail::stale_general_key(key);
    for (const std::string& k : detail::export_own_keys())
      own = own || key == "llama." + k || key == "deci." + k;
    rcpu::detail::require(!own, "export: metadata key '" + key + "' is written by export itself");
    rcpu::detail::require(!detail::has_nested_array(kv.second),
                          "export: metadata key '" + key + "' is an array of arrays, which llama.cpp cannot read");
    const std::string problem = kv.second.problem();
    rcpu::detail::require(problem.empty(), "export: metadata key '" + key + "': " + problem);
  }
  if (source != nullptr)
    for (const auto& kv : source->metadata())
      rcpu::detail::require(!detail::has_nested_array(kv.second) || kv.first.rfind("rcpu.", 0) == 0,
                            "export: the source's metadata key '" + kv.first + "' is an array of arrays");
}

/// A writer holding `model` as a GGUF file (see the file comment); `source` (may be null) gives the
/// tokenizer and general metadata. The writer reads the weights from `model` when it writes, so
/// `model` must outlive the writer's write() unchanged (a weight whose shape changed meanwhile throws).
/// \throws rcpu::invalid_argument as check_exportable(), for a weight that does not fit the type
///         (fallback_f16 off), or an F16 weight beyond F16's range (65504).
inline io::GgufWriter gguf_writer(const LlamaModel& model, const io::GgufFile* source, const ExportOptions& o,
                                  ExportReport* report = nullptr) {
  check_exportable(model, source, o);
  model.validate();
  const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(o.type));
  const LlamaConfig& c = model.config();
  ExportReport rep;
  // Layers written as they are are read from `model`; rewritten ones (uniform GQA) are owned here.
  auto rewritten = std::make_shared<std::vector<LlamaLayer>>();
  rewritten->reserve(model.layers().size());  // no reallocation: the sources keep pointers into it
  std::vector<const LlamaLayer*> layers;
  for (const LlamaLayer& L : model.layers()) {
    UniformGqa u;
    if (has_uniform_gqa(L)) {
      layers.push_back(&L);
      u.group = L.n_heads() / L.n_kv_heads();
      u.heads = L.n_heads();
      u.kv_heads = L.n_kv_heads();
    } else {
      rewritten->push_back(make_uniform_gqa(L, o.gqa_fix, &u));
      layers.push_back(&rewritten->back());
    }
    rep.attention.push_back(u);
    rep.channels.push_back(L.ffn());
  }
  bool uniform = true;
  for (const LlamaLayer* L : layers)
    uniform = uniform && L->n_heads() == layers.front()->n_heads() && L->n_kv_heads() == layers.front()->n_kv_heads() &&
              L->ffn() == layers.front()->ffn();
  rep.architecture = !o.architecture.empty() ? o.architecture : uniform ? "llama" : "deci";
  rcpu::detail::require(uniform || rep.architecture == "deci",
                        "export: architecture llama needs equal layer sizes (llama.cpp builds every layer from layer "
                        "0's); these layers differ: use deci");
  const std::string a = rep.architecture + ".";

  io::GgufWriter w;
  w.set_string("general.architecture", rep.architecture);
  if (source != nullptr) {
    // tokenizer.* and general.* verbatim, the source architecture's keys under the new name; nothing
    // else (e.g. quantize.imatrix.* or split.* describe the source file, not the export).
    const std::string src_arch = source->get_string("general.architecture", "");
    for (const auto& kv : source->metadata()) {
      const std::string& key = kv.first;
      if (key.rfind("tokenizer.", 0) == 0 || (key.rfind("general.", 0) == 0 && !detail::stale_general_key(key))) {
        w.set(key, kv.second);
      } else if (!src_arch.empty() && key.rfind(src_arch + ".", 0) == 0) {
        const std::string rest = key.substr(src_arch.size() + 1);
        const auto& own = detail::export_own_keys();
        if (std::find(own.begin(), own.end(), rest) == own.end()) w.set(a + rest, kv.second);
      }
    }
  }
  w.set_u32("general.file_type", llama_file_type(o.type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "context_length", detail::context_length(model, source));
  w.set_u32(a + "embedding_length", static_cast<std::uint32_t>(c.d_model));
  w.set_u32(a + "block_count", static_cast<std::uint32_t>(c.n_layers));
  w.set_u32(a + "vocab_size", static_cast<std::uint32_t>(c.vocab));
  std::vector<std::int64_t> heads, kvs, ffn;
  for (const LlamaLayer* L : layers) {
    heads.push_back(L->n_heads());
    kvs.push_back(L->n_kv_heads());
    ffn.push_back(L->ffn());
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
  // Which written query heads are which dense heads (-1: a zero head of the GQA fix).
  w.set_string("rcpu.export.gqa_fix", to_string(o.gqa_fix));
  for (std::size_t l = 0; l < layers.size(); ++l) {
    std::vector<std::int64_t> ids;
    for (std::size_t h = 0; h < std::size_t(layers[l]->n_heads()); ++h)
      ids.push_back(layers[l]->head_ids.empty() ? std::int64_t(h) : std::int64_t(layers[l]->head_ids[h]));
    w.set("rcpu.layer." + std::to_string(l) + ".written_heads", io::GgufValue::make_int_array(io::GgufValueType::int32, ids));
  }
  for (const auto& kv : o.metadata) w.set(kv.first, kv.second);

  // Tensors: encoded when the file is written, from matrices that live in `model` or `rewritten`.
  const auto weight_type = [&](const std::string& name, const Eigen::MatrixXf& m) {
    io::GgmlType t = o.type;
    if (m.cols() % Index(tt->block_size) != 0) {
      rcpu::detail::require(o.fallback_f16, "export: weight '" + name + "' has rows of " + std::to_string(m.cols()) +
                                                " values, not a multiple of the " + tt->name + " block size " +
                                                std::to_string(tt->block_size) + " (round the kept units, or allow F16)");
      rep.f16_fallback.push_back(name);
      t = io::GgmlType::f16;
    }
    // F16 overflows to infinity beyond 65504 (65520 rounds up): refuse rather than write infinities.
    if (t == io::GgmlType::f16)
      rcpu::detail::require(m.size() == 0 || m.cwiseAbs().maxCoeff() < 65520.0f,
                            "export: weight '" + name + "' has values beyond F16's range (" +
                                std::to_string(m.cwiseAbs().maxCoeff()) + "); write it as f32 or bf16");
    return t;
  };
  const auto add_matrix = [&](const std::string& name, const Eigen::MatrixXf* m) {
    const io::GgmlType type = weight_type(name, *m);
    const Index rows = m->rows(), cols = m->cols();
    w.add_tensor_source(name, type, {std::uint64_t(cols), std::uint64_t(rows)}, [m, type, rows, cols, rewritten](std::uint8_t* out) {
      rcpu::detail::require(m->rows() == rows && m->cols() == cols,
                            "export: the weight is " + rcpu::detail::shape(*m) + " now, " +
                                rcpu::detail::shape(rows, cols) + " when the writer was made (the model changed)");
      const Eigen::MatrixXf t = m->transpose();  // row-major W
      io::quantize(type, t.data(), std::uint64_t(t.size()), out);
    });
    rep.parameters += m->size();
  };
  const auto add_vector = [&](const std::string& name, const Eigen::VectorXf* v) {
    const Index n = v->size();
    w.add_tensor_source(name, io::GgmlType::f32, {std::uint64_t(n)}, [v, n, rewritten](std::uint8_t* out) {
      rcpu::detail::require(v->size() == n, "export: the vector has " + std::to_string(v->size()) + " entries now, " +
                                                std::to_string(n) + " when the writer was made (the model changed)");
      io::quantize(io::GgmlType::f32, v->data(), std::uint64_t(n), out);
    });
    rep.parameters += n;
  };
  add_matrix("token_embd.weight", &model.embedding());
  add_vector("output_norm.weight", &model.output_norm());
  if (!c.tied_output) add_matrix("output.weight", &model.output_weight());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LlamaLayer& L = *layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    add_vector(p + "attn_norm.weight", &L.attn_norm);
    add_matrix(p + "attn_q.weight", &L.wq);
    add_matrix(p + "attn_k.weight", &L.wk);
    add_matrix(p + "attn_v.weight", &L.wv);
    add_matrix(p + "attn_output.weight", &L.wo);
    if (L.bo.size() != 0) add_vector(p + "attn_output.bias", &L.bo);
    add_vector(p + "ffn_norm.weight", &L.ffn_norm);
    add_matrix(p + "ffn_gate.weight", &L.w_gate);
    add_matrix(p + "ffn_up.weight", &L.w_up);
    add_matrix(p + "ffn_down.weight", &L.w_down);
    if (L.b_down.size() != 0) add_vector(p + "ffn_down.bias", &L.b_down);
  }
  rep.file_bytes = w.file_size();
  if (report != nullptr) *report = std::move(rep);
  return w;
}

/// A writer would point into a temporary model: refused at compile time.
io::GgufWriter gguf_writer(LlamaModel&& model, const io::GgufFile* source, const ExportOptions& o,
                           ExportReport* report = nullptr) = delete;

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
