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
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "../io/gguf_writer.hpp"
#include "../io/spool_file.hpp"
#include "../io/staged_output.hpp"
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

inline std::uint32_t context_length(const LlamaConfig& c, const io::GgufFile* source) {
  if (c.context > 0) return std::uint32_t(c.context);
  if (source != nullptr) {
    const std::string arch = source->get_string("general.architecture", "");
    const std::int64_t c = source->get_int(arch + ".context_length", 0);
    if (c > 0 && c <= std::int64_t(UINT32_MAX)) return std::uint32_t(c);
  }
  return 0;
}

}  // namespace detail

/// Checks that a model with `config` can be written with `o` and loaded by llama.cpp, before any work
/// is spent on it (rcpu prune-model calls it on the dense model first). \throws rcpu::invalid_argument
/// for a type rcpu cannot write, rotary dimensions other than head_dim (llama.cpp's llama and deci
/// refuse them), no known context length, an unknown architecture, or metadata that would replace a
/// key export writes itself or that llama.cpp cannot read (nested arrays).
inline void check_exportable(const LlamaConfig& c, const io::GgufFile* source, const ExportOptions& o) {
  const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(o.type));
  rcpu::detail::require(tt != nullptr && tt->quantizable, std::string("export: cannot write weights of type ") +
                                                              io::to_string(o.type) + " (f32, f16, bf16, q8_0, q4_0)");
  rcpu::detail::require(c.n_rot == c.head_dim, "export: the model rotates " + std::to_string(c.n_rot) + " of " +
                                                   std::to_string(c.head_dim) +
                                                   " dimensions per head; llama.cpp's llama and deci need all of them");
  rcpu::detail::require(detail::context_length(c, source) > 0,
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

/// The same for `model` (its config).
inline void check_exportable(const LlamaModel& model, const io::GgufFile* source, const ExportOptions& o) {
  check_exportable(model.config(), source, o);
}

namespace detail {

// The sizes of a layer as written (after the uniform-GQA rewrite) and which dense head each written
// query head is (-1: a zero head).
struct WrittenSizes {
  Index heads = 0, kv_heads = 0, channels = 0;
  std::vector<std::int64_t> head_ids;
};

inline WrittenSizes written_sizes(const LlamaLayer& L) {
  WrittenSizes w{L.n_heads(), L.n_kv_heads(), L.ffn(), {}};
  for (std::size_t h = 0; h < std::size_t(L.n_heads()); ++h)
    w.head_ids.push_back(L.head_ids.empty() ? std::int64_t(h) : std::int64_t(L.head_ids[h]));
  return w;
}

// `L` as llama.cpp needs it: itself when its GQA is uniform, else its rewrite (into `storage`).
// Records the written attention and channels in `rep`.
inline const LlamaLayer& uniform_layer(const LlamaLayer& L, GqaFix fix, LlamaLayer& storage, ExportReport& rep) {
  UniformGqa u;
  const LlamaLayer* out = &L;
  if (has_uniform_gqa(L)) {
    u.group = L.n_heads() / L.n_kv_heads();
    u.heads = L.n_heads();
    u.kv_heads = L.n_kv_heads();
  } else {
    storage = make_uniform_gqa(L, fix, &u);
    out = &storage;
  }
  rep.attention.push_back(u);
  rep.channels.push_back(L.ffn());
  return *out;
}

// The architecture written: llama when every layer has the same sizes, else deci (o.architecture
// overrides; llama with different sizes is refused).
inline std::string export_architecture(const std::vector<WrittenSizes>& layers, const ExportOptions& o) {
  bool uniform = true;
  for (const WrittenSizes& L : layers)
    uniform = uniform && L.heads == layers.front().heads && L.kv_heads == layers.front().kv_heads &&
              L.channels == layers.front().channels;
  const std::string arch = !o.architecture.empty() ? o.architecture : uniform ? "llama" : "deci";
  rcpu::detail::require(uniform || arch == "deci",
                        "export: architecture llama needs equal layer sizes (llama.cpp builds every layer from layer "
                        "0's); these layers differ: use deci");
  return arch;
}

// Every metadata key of the export (see the file comment), in the order gguf_writer() writes them.
inline void export_metadata(io::GgufWriter& w, const std::string& arch, const LlamaConfig& c,
                            const io::GgufFile* source, const ExportOptions& o, const std::vector<WrittenSizes>& layers) {
  const std::string a = arch + ".";
  w.set_string("general.architecture", arch);
  if (source != nullptr) {
    // tokenizer.* and general.* verbatim, the source architecture's keys under the new name; nothing
    // else (e.g. quantize.imatrix.* or split.* describe the source file, not the export).
    const std::string src_arch = source->get_string("general.architecture", "");
    for (const auto& kv : source->metadata()) {
      const std::string& key = kv.first;
      if (key.rfind("tokenizer.", 0) == 0 || (key.rfind("general.", 0) == 0 && !stale_general_key(key))) {
        w.set(key, kv.second);
      } else if (!src_arch.empty() && key.rfind(src_arch + ".", 0) == 0) {
        const std::string rest = key.substr(src_arch.size() + 1);
        const auto& own = export_own_keys();
        if (std::find(own.begin(), own.end(), rest) == own.end()) w.set(a + rest, kv.second);
      }
    }
  }
  w.set_u32("general.file_type", llama_file_type(o.type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "context_length", context_length(c, source));
  w.set_u32(a + "embedding_length", static_cast<std::uint32_t>(c.d_model));
  w.set_u32(a + "block_count", static_cast<std::uint32_t>(c.n_layers));
  w.set_u32(a + "vocab_size", static_cast<std::uint32_t>(c.vocab));
  std::vector<std::int64_t> heads, kvs, ffn;
  for (const WrittenSizes& L : layers) {
    heads.push_back(L.heads);
    kvs.push_back(L.kv_heads);
    ffn.push_back(L.channels);
  }
  if (arch == "llama") {
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
  for (std::size_t l = 0; l < layers.size(); ++l)
    w.set("rcpu.layer." + std::to_string(l) + ".written_heads",
          io::GgufValue::make_int_array(io::GgufValueType::int32, layers[l].head_ids));
  for (const auto& kv : o.metadata) w.set(kv.first, kv.second);
}

// The type a weight of rows of `cols` values is written in: o.type, or F16 when the rows do not fill
// its blocks (listed in rep.f16_fallback; refused without fallback_f16). For F16, `max_abs()` gives the
// weight's largest magnitude: F16 overflows to infinity beyond 65504 (65520 rounds up), refused.
template <typename MaxAbs>
io::GgmlType weight_type(const std::string& name, Index cols, MaxAbs&& max_abs, const ExportOptions& o,
                         ExportReport& rep) {
  const io::GgmlTypeTraits* tt = io::ggml_type_traits(static_cast<std::uint32_t>(o.type));
  io::GgmlType t = o.type;
  if (cols % Index(tt->block_size) != 0) {
    rcpu::detail::require(o.fallback_f16, "export: weight '" + name + "' has rows of " + std::to_string(cols) +
                                              " values, not a multiple of the " + tt->name + " block size " +
                                              std::to_string(tt->block_size) + " (round the kept units, or allow F16)");
    rep.f16_fallback.push_back(name);
    t = io::GgmlType::f16;
  }
  if (t == io::GgmlType::f16) {
    const float mx = max_abs();
    rcpu::detail::require(mx < 65520.0f, "export: weight '" + name + "' has values beyond F16's range (" +
                                             std::to_string(mx) + "); write it as f32 or bf16");
  }
  return t;
}

inline float max_abs(const Eigen::MatrixXf& m) { return m.size() == 0 ? 0.0f : m.cwiseAbs().maxCoeff(); }

// Calls matrix(name, W) and vector(name, v) for each tensor of layer `l`, in the order of the file.
template <typename MatrixFn, typename VectorFn>
void for_each_layer_tensor(const LlamaLayer& L, Index l, MatrixFn&& matrix, VectorFn&& vector) {
  const std::string p = "blk." + std::to_string(l) + ".";
  vector(p + "attn_norm.weight", L.attn_norm);
  matrix(p + "attn_q.weight", L.wq);
  matrix(p + "attn_k.weight", L.wk);
  matrix(p + "attn_v.weight", L.wv);
  matrix(p + "attn_output.weight", L.wo);
  if (L.bo.size() != 0) vector(p + "attn_output.bias", L.bo);
  vector(p + "ffn_norm.weight", L.ffn_norm);
  matrix(p + "ffn_gate.weight", L.w_gate);
  matrix(p + "ffn_up.weight", L.w_up);
  matrix(p + "ffn_down.weight", L.w_down);
  if (L.b_down.size() != 0) vector(p + "ffn_down.bias", L.b_down);
}

// A weight W (d_out x d_in) encoded as GGUF stores it (rows of W contiguous) in `type`.
inline void encode_matrix(const Eigen::MatrixXf& m, io::GgmlType type, std::uint8_t* out) {
  const Eigen::MatrixXf t = m.transpose();  // row-major W
  io::quantize(type, t.data(), std::uint64_t(t.size()), out);
}

}  // namespace detail

/// A writer holding `model` as a GGUF file (see the file comment); `source` (may be null) gives the
/// tokenizer and general metadata. The writer reads the weights from `model` when it writes, so
/// `model` must outlive the writer's write() unchanged (a weight whose shape changed meanwhile throws).
/// \throws rcpu::invalid_argument as check_exportable(), for a weight that does not fit the type
///         (fallback_f16 off), or an F16 weight beyond F16's range (65504).
inline io::GgufWriter gguf_writer(const LlamaModel& model, const io::GgufFile* source, const ExportOptions& o,
                                  ExportReport* report = nullptr) {
  check_exportable(model, source, o);
  model.validate();
  const LlamaConfig& c = model.config();
  ExportReport rep;
  // Layers written as they are are read from `model`; rewritten ones (uniform GQA) are owned here.
  auto rewritten = std::make_shared<std::vector<LlamaLayer>>(model.layers().size());
  std::vector<const LlamaLayer*> layers;
  std::vector<detail::WrittenSizes> sizes;
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    layers.push_back(&detail::uniform_layer(model.layers()[l], o.gqa_fix, (*rewritten)[l], rep));
    sizes.push_back(detail::written_sizes(*layers.back()));
  }
  rep.architecture = detail::export_architecture(sizes, o);
  io::GgufWriter w;
  detail::export_metadata(w, rep.architecture, c, source, o, sizes);

  // Tensors: encoded when the file is written, from matrices that live in `model` or `rewritten`.
  const auto add_matrix = [&](const std::string& name, const Eigen::MatrixXf& mr) {
    const Eigen::MatrixXf* m = &mr;
    const io::GgmlType type = detail::weight_type(name, m->cols(), [m] { return detail::max_abs(*m); }, o, rep);
    const Index rows = m->rows(), cols = m->cols();
    w.add_tensor_source(name, type, {std::uint64_t(cols), std::uint64_t(rows)}, [m, type, rows, cols, rewritten](std::uint8_t* out) {
      rcpu::detail::require(m->rows() == rows && m->cols() == cols,
                            "export: the weight is " + rcpu::detail::shape(*m) + " now, " +
                                rcpu::detail::shape(rows, cols) + " when the writer was made (the model changed)");
      detail::encode_matrix(*m, type, out);
    });
    rep.parameters += m->size();
  };
  const auto add_vector = [&](const std::string& name, const Eigen::VectorXf& vr) {
    const Eigen::VectorXf* v = &vr;
    const Index n = v->size();
    w.add_tensor_source(name, io::GgmlType::f32, {std::uint64_t(n)}, [v, n, rewritten](std::uint8_t* out) {
      rcpu::detail::require(v->size() == n, "export: the vector has " + std::to_string(v->size()) + " entries now, " +
                                                std::to_string(n) + " when the writer was made (the model changed)");
      io::quantize(io::GgmlType::f32, v->data(), std::uint64_t(n), out);
    });
    rep.parameters += n;
  };
  add_matrix("token_embd.weight", model.embedding());
  add_vector("output_norm.weight", model.output_norm());
  if (!c.tied_output) add_matrix("output.weight", model.output_weight());
  for (std::size_t l = 0; l < layers.size(); ++l) detail::for_each_layer_tensor(*layers[l], Index(l), add_matrix, add_vector);
  rep.file_bytes = w.file_size();
  if (report != nullptr) *report = std::move(rep);
  return w;
}

/// A writer would point into a temporary model: refused at compile time.
io::GgufWriter gguf_writer(LlamaModel&& model, const io::GgufFile* source, const ExportOptions& o,
                           ExportReport* report = nullptr) = delete;

/// A model written to GGUF one layer at a time, for pipelines that never hold the whole model
/// (rcpu/model/streamed.hpp): each pruned layer is encoded when it is added and spooled to a scratch
/// file beside the output (io::SpoolFile); finish() writes the real file (header first, as GGUF
/// needs) from the spool, with the token embedding, output head and final norm converted from the
/// dense source file chunk by chunk. The file is byte for byte what gguf_writer() writes for the
/// same layers (tests/pipeline/test_streamed.cpp). Memory: one layer's encoding while adding; while
/// finishing, the largest encoded tensor (GgufWriter writes one tensor at a time: LLaMA-7B's F16
/// embedding, 250 MiB) and 64 MiB of floats. Disk: the spool (the size of the layers) until finish()
/// returns; a process killed before that leaves it behind (`OUT.rcpu-spool`, replaced by the next run).
class StreamedExport {
 public:
  /// \param source  the dense model (its embedding, output head and norm, tokenizer and metadata)
  /// \param path    the output file, where finish() stages it; the spool is `path` + ".rcpu-spool"
  /// \throws rcpu::invalid_argument as check_exportable().
  StreamedExport(const LlamaGgufReader& source, std::filesystem::path path, ExportOptions o)
      : m_source(source), m_path(std::move(path)), m_options(std::move(o)) {
    check_exportable(m_source.config(), &m_source.file(), m_options);
    m_spool = std::make_unique<io::SpoolFile>(m_path.string() + ".rcpu-spool");
  }

  const std::filesystem::path& path() const { return m_path; }
  const ExportOptions& options() const { return m_options; }

  /// Encodes the next layer (layers in order 0, 1, ...). \throws rcpu::invalid_argument for a layer
  /// that does not fit the type (as gguf_writer()) or a failed write.
  void add_layer(const LlamaLayer& layer) {
    rcpu::detail::require(m_spool != nullptr, "StreamedExport::add_layer: the file is already finished");
    const Index l = Index(m_sizes.size());
    rcpu::detail::require(l < m_source.n_layers(), "StreamedExport: layer " + std::to_string(l) + " of " +
                                                       std::to_string(m_source.n_layers()) + " added");
    layer.validate(m_source.config().d_model, "StreamedExport: layer " + std::to_string(l));
    LlamaLayer storage;
    const LlamaLayer& L = detail::uniform_layer(layer, m_options.gqa_fix, storage, m_report);
    m_sizes.push_back(detail::written_sizes(L));
    std::vector<std::uint8_t> bytes;
    const auto spool = [&](const std::string& name, io::GgmlType type, std::vector<std::uint64_t> shape) {
      m_tensors.push_back({name, type, std::move(shape), m_spool->append(bytes.data(), bytes.size()), bytes.size()});
    };
    detail::for_each_layer_tensor(
        L, l,
        [&](const std::string& name, const Eigen::MatrixXf& m) {
          const io::GgmlType type =
              detail::weight_type(name, m.cols(), [&m] { return detail::max_abs(m); }, m_options, m_report);
          bytes.resize(std::size_t(io::ggml_bytes(type, std::uint64_t(m.size()))));
          detail::encode_matrix(m, type, bytes.data());
          spool(name, type, {std::uint64_t(m.cols()), std::uint64_t(m.rows())});
          m_report.parameters += m.size();
        },
        [&](const std::string& name, const Eigen::VectorXf& v) {
          bytes.resize(std::size_t(io::ggml_bytes(io::GgmlType::f32, std::uint64_t(v.size()))));
          io::quantize(io::GgmlType::f32, v.data(), std::uint64_t(v.size()), bytes.data());
          spool(name, io::GgmlType::f32, {std::uint64_t(v.size())});
          m_report.parameters += v.size();
        });
  }

  /// Writes the file at the temporary path `staged` reserves for path() (staged.publish() moves it into
  /// place), with `metadata` after ExportOptions::metadata (e.g. provenance() of the pipeline result,
  /// known only now). The spool is deleted. \throws rcpu::invalid_argument if a layer is missing, as
  /// check_exportable() for the metadata, or if writing fails.
  ExportReport finish(io::StagedOutput& staged, const std::vector<std::pair<std::string, io::GgufValue>>& metadata = {}) {
    const LlamaConfig& c = m_source.config();
    rcpu::detail::require(m_spool != nullptr, "StreamedExport::finish: the file is already finished");
    rcpu::detail::require(Index(m_sizes.size()) == c.n_layers, "StreamedExport::finish: " + std::to_string(m_sizes.size()) +
                                                                   " of " + std::to_string(c.n_layers) + " layers added");
    ExportOptions o = m_options;
    o.metadata.insert(o.metadata.end(), metadata.begin(), metadata.end());
    check_exportable(c, &m_source.file(), o);
    ExportReport rep = m_report;
    rep.architecture = detail::export_architecture(m_sizes, o);
    io::GgufWriter w;
    detail::export_metadata(w, rep.architecture, c, &m_source.file(), o, m_sizes);
    // The embedding, norm and head first (gguf_writer()'s order), converted from the source.
    ExportReport outer;
    add_source_matrix(w, "token_embd.weight", o, outer);
    add_source_vector(w, "output_norm.weight");
    if (!c.tied_output) add_source_matrix(w, "output.weight", o, outer);
    rep.parameters += detail::outer_parameters(c);
    rep.f16_fallback.insert(rep.f16_fallback.begin(), outer.f16_fallback.begin(), outer.f16_fallback.end());
    io::SpoolFile* spool = m_spool.get();
    for (const Spooled& t : m_tensors)
      w.add_tensor_source(t.name, t.type, t.shape, [spool, t](std::uint8_t* out) { spool->read(t.offset, out, t.bytes); });
    rep.file_bytes = w.file_size();
    w.write(staged, m_path);
    m_spool.reset();
    return rep;
  }

 private:
  struct Spooled {
    std::string name;
    io::GgmlType type;
    std::vector<std::uint64_t> shape;
    std::uint64_t offset, bytes;
  };

  // Rows of the source tensor converted in chunks of about 64 MiB of floats.
  template <typename F>
  void for_each_chunk(const io::GgufTensorInfo& t, F&& f) const {
    const std::uint64_t width = t.shape[0], rows = t.n_elements / width;
    const std::uint64_t chunk = std::max<std::uint64_t>(1, (std::uint64_t(16) << 20) / width);
    std::vector<float> buf;
    for (std::uint64_t r0 = 0; r0 < rows; r0 += chunk) {
      const std::uint64_t n = std::min(chunk, rows - r0);
      buf.resize(std::size_t(n * width));
      m_source.file().tensor_rows(t, r0, n, buf.data());
      f(r0, n, buf);
    }
    m_source.file().release(t);
  }

  void add_source_matrix(io::GgufWriter& w, const std::string& name, const ExportOptions& o, ExportReport& rep) {
    const io::GgufTensorInfo& t = m_source.file().tensor(name);
    const auto max_abs = [&] {
      float mx = 0;
      for_each_chunk(t, [&](std::uint64_t, std::uint64_t, const std::vector<float>& v) {
        for (const float x : v) mx = std::max(mx, std::abs(x));
      });
      return mx;
    };
    const io::GgmlType type = detail::weight_type(name, Index(t.shape[0]), max_abs, o, rep);
    w.add_tensor_source(name, type, t.shape, [this, &t, type](std::uint8_t* out) {
      const std::uint64_t row_bytes = io::ggml_bytes(type, t.shape[0]);
      for_each_chunk(t, [&](std::uint64_t r0, std::uint64_t n, const std::vector<float>& v) {
        io::quantize(type, v.data(), n * t.shape[0], out + r0 * row_bytes);
      });
    });
  }

  void add_source_vector(io::GgufWriter& w, const std::string& name) {
    const io::GgufTensorInfo& t = m_source.file().tensor(name);
    w.add_tensor_source(name, io::GgmlType::f32, {t.n_elements}, [this, &t](std::uint8_t* out) {
      const std::vector<float> v = m_source.file().tensor_values(t);
      io::quantize(io::GgmlType::f32, v.data(), v.size(), out);
    });
  }

  LlamaGgufReader m_source;
  std::filesystem::path m_path;
  ExportOptions m_options;
  std::unique_ptr<io::SpoolFile> m_spool;
  std::vector<detail::WrittenSizes> m_sizes;
  std::vector<Spooled> m_tensors;
  ExportReport m_report;
};

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
