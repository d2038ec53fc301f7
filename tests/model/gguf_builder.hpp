// Writes GGUF files byte by byte for the tests and the fuzz seed corpus, with hooks to corrupt every
// field (counts, types, offsets, alignment) so that each error path of the reader can be reached.
#ifndef RCPU_TESTS_MODEL_GGUF_BUILDER_HPP
#define RCPU_TESTS_MODEL_GGUF_BUILDER_HPP

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace rcpu_test {

/// Float to IEEE half, exact for values that a half represents (the tests only use such values).
inline std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  const std::uint32_t mant = x & 0x7FFFFFu;
  if (((x >> 23) & 0xFF) == 0) return static_cast<std::uint16_t>(sign);
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7C00u);
  if (exp <= 0) {  // subnormal half
    const std::uint32_t m = (mant | 0x800000u) >> (14 - exp);
    return static_cast<std::uint16_t>(sign | m);
  }
  return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(exp) << 10 | mant >> 13);
}

class Bytes {
 public:
  std::vector<std::uint8_t> data;
  Bytes& u8(std::uint8_t v) {
    data.push_back(v);
    return *this;
  }
  Bytes& u16(std::uint16_t v) { return u8(static_cast<std::uint8_t>(v)).u8(static_cast<std::uint8_t>(v >> 8)); }
  Bytes& u32(std::uint32_t v) { return u16(static_cast<std::uint16_t>(v)).u16(static_cast<std::uint16_t>(v >> 16)); }
  Bytes& u64(std::uint64_t v) { return u32(static_cast<std::uint32_t>(v)).u32(static_cast<std::uint32_t>(v >> 32)); }
  Bytes& f32(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u32(u);
  }
  Bytes& f64(double d) {
    std::uint64_t u;
    std::memcpy(&u, &d, 8);
    return u64(u);
  }
  Bytes& f16(float f) { return u16(float_to_half(f)); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<std::uint8_t>& b) {
    data.insert(data.end(), b.begin(), b.end());
    return *this;
  }
};

class GgufBuilder {
 public:
  struct Tensor {
    std::string name;
    std::uint32_t type;
    std::vector<std::uint64_t> shape;
    std::vector<std::uint8_t> bytes;
    std::optional<std::uint64_t> offset_override;  // written instead of the computed offset
  };

  std::string magic = "GGUF";
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  // used for the layout; write general.alignment yourself to change it
  std::optional<std::uint64_t> tensor_count_override, kv_count_override;
  std::vector<std::vector<std::uint8_t>> kvs;  // encoded key + type + value
  std::vector<Tensor> tensors;

  // Metadata of each type (type ids as in the GGUF spec).
  GgufBuilder& kv_raw(const std::string& key, std::uint32_t type, const std::vector<std::uint8_t>& payload) {
    Bytes b;
    b.str(key).u32(type).raw(payload);
    kvs.push_back(b.data);
    return *this;
  }
  GgufBuilder& kv_u8(const std::string& k, std::uint8_t v) { return kv_raw(k, 0, Bytes().u8(v).data); }
  GgufBuilder& kv_i8(const std::string& k, std::int8_t v) {
    return kv_raw(k, 1, Bytes().u8(static_cast<std::uint8_t>(v)).data);
  }
  GgufBuilder& kv_u16(const std::string& k, std::uint16_t v) { return kv_raw(k, 2, Bytes().u16(v).data); }
  GgufBuilder& kv_i16(const std::string& k, std::int16_t v) {
    return kv_raw(k, 3, Bytes().u16(static_cast<std::uint16_t>(v)).data);
  }
  GgufBuilder& kv_u32(const std::string& k, std::uint32_t v) { return kv_raw(k, 4, Bytes().u32(v).data); }
  GgufBuilder& kv_i32(const std::string& k, std::int32_t v) {
    return kv_raw(k, 5, Bytes().u32(static_cast<std::uint32_t>(v)).data);
  }
  GgufBuilder& kv_f32(const std::string& k, float v) { return kv_raw(k, 6, Bytes().f32(v).data); }
  GgufBuilder& kv_bool(const std::string& k, bool v) { return kv_raw(k, 7, Bytes().u8(v ? 1 : 0).data); }
  GgufBuilder& kv_string(const std::string& k, const std::string& v) { return kv_raw(k, 8, Bytes().str(v).data); }
  GgufBuilder& kv_u64(const std::string& k, std::uint64_t v) { return kv_raw(k, 10, Bytes().u64(v).data); }
  GgufBuilder& kv_i64(const std::string& k, std::int64_t v) {
    return kv_raw(k, 11, Bytes().u64(static_cast<std::uint64_t>(v)).data);
  }
  GgufBuilder& kv_f64(const std::string& k, double v) { return kv_raw(k, 12, Bytes().f64(v).data); }
  GgufBuilder& kv_strings(const std::string& k, const std::vector<std::string>& v) {
    Bytes b;
    b.u32(8).u64(v.size());
    for (const auto& s : v) b.str(s);
    return kv_raw(k, 9, b.data);
  }
  GgufBuilder& kv_f32s(const std::string& k, const std::vector<float>& v) {
    Bytes b;
    b.u32(6).u64(v.size());
    for (float f : v) b.f32(f);
    return kv_raw(k, 9, b.data);
  }
  GgufBuilder& kv_i32s(const std::string& k, const std::vector<std::int32_t>& v) {
    Bytes b;
    b.u32(5).u64(v.size());
    for (auto x : v) b.u32(static_cast<std::uint32_t>(x));
    return kv_raw(k, 9, b.data);
  }

  GgufBuilder& tensor(const std::string& name, std::uint32_t type, std::vector<std::uint64_t> shape,
                      std::vector<std::uint8_t> bytes) {
    tensors.push_back(Tensor{name, type, std::move(shape), std::move(bytes), std::nullopt});
    return *this;
  }
  GgufBuilder& tensor_f32(const std::string& name, std::vector<std::uint64_t> shape, const std::vector<float>& v) {
    Bytes b;
    for (float f : v) b.f32(f);
    return tensor(name, 0, std::move(shape), b.data);
  }

  /// A float matrix W (d_out x d_in, PyTorch convention) as GGUF stores it: shape {d_in, d_out},
  /// rows of W contiguous.
  GgufBuilder& matrix_f32(const std::string& name, const Eigen::MatrixXf& W) {
    Bytes b;
    for (Eigen::Index i = 0; i < W.rows(); ++i)
      for (Eigen::Index j = 0; j < W.cols(); ++j) b.f32(W(i, j));
    return tensor(name, 0, {static_cast<std::uint64_t>(W.cols()), static_cast<std::uint64_t>(W.rows())}, b.data);
  }
  GgufBuilder& vector_f32(const std::string& name, const Eigen::VectorXf& v) {
    Bytes b;
    for (Eigen::Index i = 0; i < v.size(); ++i) b.f32(v(i));
    return tensor(name, 0, {static_cast<std::uint64_t>(v.size())}, b.data);
  }

  std::vector<std::uint8_t> build() const {
    Bytes b;
    for (char ch : magic.substr(0, 4)) b.u8(static_cast<std::uint8_t>(ch));
    b.u32(version);
    b.u64(tensor_count_override ? *tensor_count_override : tensors.size());
    b.u64(kv_count_override ? *kv_count_override : kvs.size());
    for (const auto& kv : kvs) b.raw(kv);
    std::vector<std::uint64_t> offsets;
    std::uint64_t off = 0;
    for (const auto& t : tensors) {
      offsets.push_back(off);
      off += t.bytes.size();
      off = (off + alignment - 1) / alignment * alignment;
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      b.str(t.name).u32(static_cast<std::uint32_t>(t.shape.size()));
      for (auto d : t.shape) b.u64(d);
      b.u32(t.type).u64(t.offset_override ? *t.offset_override : offsets[i]);
    }
    if (!tensors.empty()) {
      while (b.data.size() % alignment != 0) b.u8(0);
      const std::size_t data_start = b.data.size();
      for (std::size_t i = 0; i < tensors.size(); ++i) {
        b.data.resize(data_start + offsets[i], 0);
        b.raw(tensors[i].bytes);
      }
      while ((b.data.size() - data_start) % alignment != 0) b.u8(0);
    }
    return b.data;
  }
};

/// A Q4_0 block: scale d and 32 values q in [0, 16) (x = (q - 8) d).
inline std::vector<std::uint8_t> q4_0_block(float d, const std::vector<int>& q) {
  Bytes b;
  b.f16(d);
  for (int j = 0; j < 16; ++j) b.u8(static_cast<std::uint8_t>((q[j] & 0xF) | (q[j + 16] & 0xF) << 4));
  return b.data;
}
/// A Q4_1 block: x = q d + m.
inline std::vector<std::uint8_t> q4_1_block(float d, float m, const std::vector<int>& q) {
  Bytes b;
  b.f16(d).f16(m);
  for (int j = 0; j < 16; ++j) b.u8(static_cast<std::uint8_t>((q[j] & 0xF) | (q[j + 16] & 0xF) << 4));
  return b.data;
}
/// Q5_0 / Q5_1 blocks: q in [0, 32); x = (q - 16) d or q d + m.
inline std::vector<std::uint8_t> q5_block(bool with_min, float d, float m, const std::vector<int>& q) {
  Bytes b;
  b.f16(d);
  if (with_min) b.f16(m);
  std::uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<std::uint32_t>((q[j] >> 4) & 1) << j;
  b.u32(qh);
  for (int j = 0; j < 16; ++j) b.u8(static_cast<std::uint8_t>((q[j] & 0xF) | (q[j + 16] & 0xF) << 4));
  return b.data;
}
/// A Q8_0 block: x = q d, q in [-128, 127].
inline std::vector<std::uint8_t> q8_0_block(float d, const std::vector<int>& q) {
  Bytes b;
  b.f16(d);
  for (int j = 0; j < 32; ++j) b.u8(static_cast<std::uint8_t>(static_cast<std::int8_t>(q[j])));
  return b.data;
}

}  // namespace rcpu_test

#endif  // RCPU_TESTS_MODEL_GGUF_BUILDER_HPP
