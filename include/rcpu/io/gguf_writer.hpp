// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_GGUF_WRITER_HPP
#define RCPU_IO_GGUF_WRITER_HPP

/// \file gguf_writer.hpp
/// Writer of GGUF version 3 files (little-endian): metadata of every type, tensors in any type that
/// rcpu::io::quantize() writes (F32, F16, BF16, Q8_0, Q4_0) or as ready-made bytes of any ggml type,
/// each tensor at an offset that is a multiple of the alignment. write() builds the file at a
/// temporary sibling path and renames it into place only when every byte was written, so a failed
/// write leaves no file behind and never touches an existing one (rcpu::io::StagedOutput).
///
/// Tensor data is produced when the file is written, one tensor at a time (add_tensor_source()), so
/// a model can be written without holding all of its encoded tensors in memory. Metadata values are
/// checked when set (GgufValue::problem()). Arrays of arrays are valid GGUF and written, but llama.cpp
/// refuses a file that has one (rcpu/model/export.hpp keeps them out of exports).
///
///     rcpu::io::GgufWriter w;
///     w.set_string("general.architecture", "llama");
///     w.add_matrix("blk.0.attn_q.weight", Wq, rcpu::io::GgmlType::f16);   // d_out x d_in
///     w.write("model.gguf");
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "ggml_quants.hpp"
#include "gguf.hpp"
#include "staged_output.hpp"

namespace rcpu {
namespace io {

/// Builds a GGUF file in memory (metadata and a table of tensors) and writes it (see the file comment).
class GgufWriter {
 public:
  /// Fills `bytes` (ggml_bytes(type, n_elements) of them) with one tensor's encoded data.
  using Source = std::function<void(std::uint8_t* bytes)>;

  /// One tensor of the table.
  struct Tensor {
    std::string name;
    GgmlType type = GgmlType::f32;
    std::vector<std::uint64_t> shape;  ///< GGUF order: shape[0] varies fastest
    std::uint64_t n_bytes = 0;
    Source source;
  };

  /// \param alignment  of the data section and of every tensor (a power of two; GGUF's default 32).
  ///                   Another value is written as general.alignment.
  explicit GgufWriter(std::uint64_t alignment = 32) : m_alignment(alignment) {
    if (alignment == 0 || alignment > (1u << 30) || (alignment & (alignment - 1)) != 0)
      throw invalid_argument("GgufWriter: alignment = " + std::to_string(alignment) +
                             " is not a power of two in [1, 2^30]");
    if (alignment != 32) set("general.alignment", GgufValue::make_uint(GgufValueType::uint32, alignment));
  }

  std::uint64_t alignment() const { return m_alignment; }

  // ---- metadata --------------------------------------------------------------------------------

  /// Sets `key` to `value`: replaces an existing value in its place, or appends the key.
  /// \throws rcpu::invalid_argument for an empty key or a general.alignment that differs from alignment().
  /// \throws rcpu::invalid_argument for an empty key, a value GGUF cannot store as its type says
  ///         (GgufValue::problem()), or a general.alignment that is not the writer's, as UINT32 (what
  ///         llama.cpp reads).
  GgufWriter& set(const std::string& key, GgufValue value) {
    if (key.empty()) throw invalid_argument("GgufWriter::set: empty metadata key");
    const std::string problem = value.problem();
    if (!problem.empty()) throw invalid_argument("GgufWriter::set: metadata key '" + key + "': " + problem);
    if (key == "general.alignment") {
      const bool ok = value.type() == GgufValueType::uint32 && value.as_int() == static_cast<std::int64_t>(m_alignment);
      if (!ok)
        throw invalid_argument("GgufWriter::set: general.alignment must be the writer's alignment " +
                               std::to_string(m_alignment) + " as UINT32 (set it in the constructor)");
    }
    const auto it = m_key_index.find(key);
    if (it != m_key_index.end()) {
      m_metadata[it->second].second = std::move(value);
    } else {
      m_key_index.emplace(key, m_metadata.size());
      m_metadata.emplace_back(key, std::move(value));
    }
    return *this;
  }
  GgufWriter& set_string(const std::string& key, std::string v) { return set(key, GgufValue::make_string(std::move(v))); }
  GgufWriter& set_u32(const std::string& key, std::uint32_t v) {
    return set(key, GgufValue::make_uint(GgufValueType::uint32, v));
  }
  GgufWriter& set_i32(const std::string& key, std::int32_t v) {
    return set(key, GgufValue::make_int(GgufValueType::int32, v));
  }
  GgufWriter& set_u64(const std::string& key, std::uint64_t v) {
    return set(key, GgufValue::make_uint(GgufValueType::uint64, v));
  }
  GgufWriter& set_f32(const std::string& key, float v) { return set(key, GgufValue::make_float(GgufValueType::float32, v)); }
  GgufWriter& set_f64(const std::string& key, double v) { return set(key, GgufValue::make_float(GgufValueType::float64, v)); }
  GgufWriter& set_bool(const std::string& key, bool v) { return set(key, GgufValue::make_bool(v)); }

  /// Removes `key`; returns whether it was there.
  bool remove(const std::string& key) {
    const auto it = m_key_index.find(key);
    if (it == m_key_index.end()) return false;
    m_metadata.erase(m_metadata.begin() + static_cast<std::ptrdiff_t>(it->second));
    m_key_index.clear();
    for (std::size_t i = 0; i < m_metadata.size(); ++i) m_key_index.emplace(m_metadata[i].first, i);
    return true;
  }
  const GgufValue* find(const std::string& key) const {
    const auto it = m_key_index.find(key);
    return it == m_key_index.end() ? nullptr : &m_metadata[it->second].second;
  }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return m_metadata; }

  /// Copies every metadata key of `file` that starts with `prefix` (every key when empty), in file
  /// order, except general.alignment (the writer's own).
  GgufWriter& copy_metadata(const GgufFile& file, const std::string& prefix = "") {
    for (const auto& kv : file.metadata())
      if (kv.first.compare(0, prefix.size(), prefix) == 0 && kv.first != "general.alignment") set(kv.first, kv.second);
    return *this;
  }

  // ---- tensors ---------------------------------------------------------------------------------

  /// Adds a tensor whose bytes `source` produces when the file is written.
  /// \throws rcpu::invalid_argument for a bad or repeated name, a bad shape, or a first dimension that
  ///         is not a multiple of the type's block size.
  GgufWriter& add_tensor_source(const std::string& name, GgmlType type, std::vector<std::uint64_t> shape, Source source) {
    if (name.empty() || name.size() > 63)
      throw invalid_argument("GgufWriter: tensor name '" + name + "' must have 1 to 63 bytes (ggml's limit)");
    if (m_tensor_index.count(name)) throw invalid_argument("GgufWriter: tensor '" + name + "' added twice");
    if (shape.empty() || shape.size() > GgufFile::max_dims)
      throw invalid_argument("GgufWriter: tensor '" + name + "' has " + std::to_string(shape.size()) +
                             " dimensions, expected 1 to " + std::to_string(GgufFile::max_dims));
    std::uint64_t n = 1;
    for (const std::uint64_t d : shape)
      if (d == 0 || !detail::checked_mul(n, d, n) || n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw invalid_argument("GgufWriter: tensor '" + name + "' has a zero or overflowing dimension");
    const GgmlTypeTraits* t = ggml_type_traits(static_cast<std::uint32_t>(type));
    if (t == nullptr) throw invalid_argument("GgufWriter: tensor '" + name + "' has an unknown type");
    if (shape[0] % t->block_size != 0)
      throw invalid_argument("GgufWriter: tensor '" + name + "': rows of " + std::to_string(shape[0]) +
                             " elements are not a multiple of the " + t->name + " block size " +
                             std::to_string(t->block_size));
    Tensor x;
    x.name = name;
    x.type = type;
    x.shape = std::move(shape);
    x.n_bytes = ggml_bytes(type, n);
    x.source = std::move(source);
    m_tensor_index.emplace(name, m_tensors.size());
    m_tensors.push_back(std::move(x));
    return *this;
  }

  /// Adds a tensor of ready-encoded bytes (any ggml type). \throws rcpu::invalid_argument if their
  /// count is not the size of `shape` in `type`.
  GgufWriter& add_tensor_bytes(const std::string& name, GgmlType type, std::vector<std::uint64_t> shape,
                               std::vector<std::uint8_t> bytes) {
    auto data = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
    add_tensor_source(name, type, std::move(shape), [data](std::uint8_t* out) {
      if (!data->empty()) std::memcpy(out, data->data(), data->size());
    });
    if (m_tensors.back().n_bytes != data->size()) {
      const std::uint64_t need = m_tensors.back().n_bytes;
      drop_last();
      throw invalid_argument("GgufWriter: tensor '" + name + "' needs " + std::to_string(need) + " bytes, got " +
                             std::to_string(data->size()));
    }
    return *this;
  }

  /// Adds `values` (in GGUF order, shape[0] fastest) converted to `type` now: rcpu::io::quantize(),
  /// so a value that the type cannot hold throws here, not in write().
  GgufWriter& add_tensor(const std::string& name, GgmlType type, std::vector<std::uint64_t> shape,
                         const std::vector<float>& values) {
    std::uint64_t n = 1;
    for (const std::uint64_t d : shape)
      if (!detail::checked_mul(n, d, n)) throw invalid_argument("GgufWriter: tensor '" + name + "': the shape overflows");
    if (n != values.size())
      throw invalid_argument("GgufWriter: tensor '" + name + "': " + std::to_string(values.size()) +
                             " values for a shape of " + std::to_string(n) + " elements");
    std::vector<std::uint8_t> bytes;
    try {
      bytes.resize(static_cast<std::size_t>(ggml_bytes(type, n)));
      quantize(type, values.data(), n, bytes.data());
    } catch (const invalid_argument& e) {
      throw invalid_argument("GgufWriter: tensor '" + name + "': " + e.message());
    }
    return add_tensor_bytes(name, type, std::move(shape), std::move(bytes));
  }

  /// Adds a weight `W` (d_out x d_in, y = W x) as GGUF stores it: shape {d_in, d_out}, rows of W
  /// contiguous, so that GgufFile::tensor_matrix() gives W back.
  GgufWriter& add_matrix(const std::string& name, const Eigen::Ref<const Eigen::MatrixXf>& W, GgmlType type) {
    const Eigen::MatrixXf t = W.transpose();  // column-major d_in x d_out = row-major W
    std::vector<float> v(t.data(), t.data() + t.size());
    return add_tensor(name, type, {static_cast<std::uint64_t>(W.cols()), static_cast<std::uint64_t>(W.rows())}, v);
  }
  /// Adds a vector (shape {n}).
  GgufWriter& add_vector(const std::string& name, const Eigen::Ref<const Eigen::VectorXf>& v,
                         GgmlType type = GgmlType::f32) {
    std::vector<float> x(v.data(), v.data() + v.size());
    return add_tensor(name, type, {static_cast<std::uint64_t>(v.size())}, x);
  }

  const std::vector<Tensor>& tensors() const { return m_tensors; }
  const Tensor* find_tensor(const std::string& name) const {
    const auto it = m_tensor_index.find(name);
    return it == m_tensor_index.end() ? nullptr : &m_tensors[it->second];
  }

  /// Size of the file write() produces.
  std::uint64_t file_size() const {
    std::uint64_t n = header_size();
    n += pad(n);
    for (const Tensor& t : m_tensors) n += t.n_bytes + pad(t.n_bytes);
    return n;
  }

  // ---- output ----------------------------------------------------------------------------------

  /// Writes the file to a stream. \throws rcpu::invalid_argument if the stream fails.
  void write(std::ostream& os) const {
    Out out{os};
    out.bytes("GGUF", 4);
    out.u32(3);
    out.u64(m_tensors.size());
    out.u64(m_metadata.size());
    for (const auto& kv : m_metadata) {
      out.str(kv.first);
      out.u32(static_cast<std::uint32_t>(kv.second.type()));
      write_value(out, kv.second);
    }
    std::uint64_t offset = 0;
    for (const Tensor& t : m_tensors) {
      out.str(t.name);
      out.u32(static_cast<std::uint32_t>(t.shape.size()));
      for (const std::uint64_t d : t.shape) out.u64(d);
      out.u32(static_cast<std::uint32_t>(t.type));
      out.u64(offset);
      offset += t.n_bytes + pad(t.n_bytes);
    }
    out.zeros(pad(out.written));
    std::vector<std::uint8_t> buf;
    for (const Tensor& t : m_tensors) {
      buf.assign(static_cast<std::size_t>(t.n_bytes), 0);
      try {
        t.source(buf.data());
      } catch (const invalid_argument& e) {
        throw invalid_argument("tensor '" + t.name + "': " + e.message());
      }
      out.bytes(buf.data(), buf.size());
      out.zeros(pad(t.n_bytes));
    }
    os.flush();
    if (!os) throw invalid_argument("writing the stream failed");
  }

  /// The whole file in memory.
  std::vector<std::uint8_t> to_bytes() const {
    std::ostringstream os(std::ios::binary);
    write(os);
    const std::string s = os.str();
    return std::vector<std::uint8_t>(s.begin(), s.end());
  }

  /// Writes the file at `path`: at `path` + ".rcpu-part" first, renamed over `path` when complete.
  /// \throws rcpu::invalid_argument (with nothing left behind and an existing file untouched) if the
  ///         file cannot be created or written, or a tensor source throws.
  void write(const std::string& path) const {
    StagedOutput staged;
    write(staged, path);
    staged.publish();
  }

  /// Writes the file at the temporary path that `staged` reserves for `path`; staged.publish() moves it
  /// (with the other files of the set) into place. \throws rcpu::invalid_argument as write(path).
  void write(StagedOutput& staged, const std::filesystem::path& path) const {
    const std::filesystem::path part = staged.stage(path);
    std::ofstream f(part, std::ios::binary | std::ios::trunc);
    if (!f) throw invalid_argument("GgufWriter: cannot create " + part.string());
    try {
      write(f);
    } catch (const invalid_argument& e) {
      throw invalid_argument("GgufWriter: " + path.string() + ": " + e.message());
    }
    f.close();
    if (!f) throw invalid_argument("GgufWriter: " + path.string() + ": closing the file failed (disk full?)");
  }

 private:
  struct Out {
    std::ostream& os;
    std::uint64_t written = 0;
    void bytes(const void* p, std::size_t n) {
      os.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
      if (!os) throw invalid_argument("writing " + std::to_string(n) + " bytes at offset " + std::to_string(written) + " failed");
      written += n;
    }
    void u8(std::uint8_t v) { bytes(&v, 1); }
    void u16(std::uint16_t v) {
      std::uint8_t b[2];
      detail::store_u16(b, v);
      bytes(b, 2);
    }
    void u32(std::uint32_t v) {
      std::uint8_t b[4];
      detail::store_u32(b, v);
      bytes(b, 4);
    }
    void u64(std::uint64_t v) {
      u32(static_cast<std::uint32_t>(v));
      u32(static_cast<std::uint32_t>(v >> 32));
    }
    void str(const std::string& s) {
      u64(s.size());
      bytes(s.data(), s.size());
    }
    void zeros(std::uint64_t n) {
      static const char z[64] = {};
      while (n > 0) {
        const std::uint64_t k = n < 64 ? n : 64;
        bytes(z, static_cast<std::size_t>(k));
        n -= k;
      }
    }
  };

  std::uint64_t pad(std::uint64_t n) const { return (m_alignment - n % m_alignment) % m_alignment; }

  static std::uint64_t value_size(const GgufValue& v) {
    switch (v.type()) {
      case GgufValueType::string: return 8 + v.as_string().size();
      case GgufValueType::array: {
        std::uint64_t n = 12;
        if (const auto* p = v.packed_bytes()) return n + p->size();
        for (const GgufValue& e : *v.elements()) n += value_size(e);
        return n;
      }
      default: return detail::min_value_size(v.type());
    }
  }

  std::uint64_t header_size() const {
    std::uint64_t n = 4 + 4 + 8 + 8;
    for (const auto& kv : m_metadata) n += 8 + kv.first.size() + 4 + value_size(kv.second);
    for (const Tensor& t : m_tensors) n += 8 + t.name.size() + 4 + 8 * t.shape.size() + 4 + 8;
    return n;
  }

  static void write_value(Out& out, const GgufValue& v) {
    switch (v.type()) {
      case GgufValueType::uint8:
      case GgufValueType::int8:
      case GgufValueType::boolean: out.u8(static_cast<std::uint8_t>(v.raw_uint())); return;
      case GgufValueType::uint16:
      case GgufValueType::int16: out.u16(static_cast<std::uint16_t>(v.raw_uint())); return;
      case GgufValueType::uint32:
      case GgufValueType::int32: out.u32(static_cast<std::uint32_t>(v.raw_uint())); return;
      case GgufValueType::uint64:
      case GgufValueType::int64: out.u64(v.raw_uint()); return;
      case GgufValueType::float32: {
        const float f = static_cast<float>(v.as_double());
        std::uint32_t u;
        std::memcpy(&u, &f, 4);
        out.u32(u);
        return;
      }
      case GgufValueType::float64: {
        const double d = v.as_double();
        std::uint64_t u;
        std::memcpy(&u, &d, 8);
        out.u64(u);
        return;
      }
      case GgufValueType::string: out.str(v.as_string()); return;
      case GgufValueType::array: {
        out.u32(static_cast<std::uint32_t>(v.element_type()));
        out.u64(v.size());
        if (const auto* p = v.packed_bytes()) {
          out.bytes(p->data(), p->size());
        } else {
          // An element that is itself an array carries its own element type and count.
          for (const GgufValue& e : *v.elements()) write_value(out, e);
        }
        return;
      }
    }
  }

  void drop_last() {
    m_tensor_index.erase(m_tensors.back().name);
    m_tensors.pop_back();
  }

  std::uint64_t m_alignment;
  std::vector<std::pair<std::string, GgufValue>> m_metadata;
  std::unordered_map<std::string, std::size_t> m_key_index;
  std::vector<Tensor> m_tensors;
  std::unordered_map<std::string, std::size_t> m_tensor_index;
};

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_GGUF_WRITER_HPP
