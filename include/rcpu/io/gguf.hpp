// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_GGUF_HPP
#define RCPU_IO_GGUF_HPP

/// \file gguf.hpp
/// Reader for GGUF files (versions 2 and 3, little-endian): metadata of every type, the tensor table,
/// and every tensor as float (the element types and their dequantization: ggml_quants.hpp).
///
/// Optional part of rcpu: not included by rcpu.hpp. The file is memory-mapped where POSIX mmap exists
/// (read into memory elsewhere). Every count, length, offset and size is checked against the bytes that
/// are actually there before it is used, so a truncated or malformed file throws rcpu::invalid_argument
/// with the offset and the field it was reading, and never reads out of bounds.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "ggml_quants.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define RCPU_GGUF_HAVE_MMAP 1
#endif

namespace rcpu {
namespace io {

/// Type tag of a GGUF metadata value (the numbers are the file format's).
enum class GgufValueType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12
};

inline const char* to_string(GgufValueType type) {
  switch (type) {
    case GgufValueType::uint8: return "UINT8";
    case GgufValueType::int8: return "INT8";
    case GgufValueType::uint16: return "UINT16";
    case GgufValueType::int16: return "INT16";
    case GgufValueType::uint32: return "UINT32";
    case GgufValueType::int32: return "INT32";
    case GgufValueType::float32: return "FLOAT32";
    case GgufValueType::boolean: return "BOOL";
    case GgufValueType::string: return "STRING";
    case GgufValueType::array: return "ARRAY";
    case GgufValueType::uint64: return "UINT64";
    case GgufValueType::int64: return "INT64";
    case GgufValueType::float64: return "FLOAT64";
  }
  return "unknown";
}

namespace detail {

[[noreturn]] inline void gguf_fail(const std::string& source, const std::string& message) {
  throw invalid_argument("gguf: " + source + ": " + message);
}

inline bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::uint16:
    case GgufValueType::int16:
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::uint64:
    case GgufValueType::int64: return true;
    default: return false;
  }
}

inline bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::int8 || t == GgufValueType::int16 || t == GgufValueType::int32 ||
         t == GgufValueType::int64;
}

/// Bytes that one element of a type takes at least: bounds array counts before anything is allocated.
inline std::uint64_t min_value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::uint16:
    case GgufValueType::int16: return 2;
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::float32: return 4;
    case GgufValueType::uint64:
    case GgufValueType::int64:
    case GgufValueType::float64:
    case GgufValueType::string: return 8;  // a string is at least its 8-byte length
    case GgufValueType::array: return 12;  // element type + count
  }
  return 1;
}

}  // namespace detail

/// One metadata value: a scalar, a string, or an array of values (arrays may nest). Arrays of numbers
/// and booleans are kept packed as in the file (no per-element objects), so that a file cannot make
/// the reader allocate much more memory than its own size.
class GgufValue {
 public:
  using Array = std::vector<GgufValue>;

  GgufValue() = default;
  static GgufValue make_uint(GgufValueType t, std::uint64_t v) { return GgufValue(t, Storage(v)); }
  static GgufValue make_int(GgufValueType t, std::int64_t v) { return GgufValue(t, Storage(v)); }
  static GgufValue make_float(GgufValueType t, double v) { return GgufValue(t, Storage(v)); }
  static GgufValue make_bool(bool v) { return GgufValue(GgufValueType::boolean, Storage(v)); }
  static GgufValue make_string(std::string v) { return GgufValue(GgufValueType::string, Storage(std::move(v))); }
  /// An array of strings or of arrays.
  static GgufValue make_array(GgufValueType element_type, Array v) {
    GgufValue out(GgufValueType::array, Storage(std::move(v)));
    out.m_element_type = element_type;
    return out;
  }
  /// An array of scalars, `bytes` holding them little-endian as in the file.
  static GgufValue make_packed_array(GgufValueType element_type, std::vector<std::uint8_t> bytes) {
    GgufValue out(GgufValueType::array, Storage(Packed{std::move(bytes)}));
    out.m_element_type = element_type;
    return out;
  }

  /// An array of integers stored as `element_type` (any integer type).
  /// \throws rcpu::invalid_argument if a value does not fit that type.
  static GgufValue make_int_array(GgufValueType element_type, const std::vector<std::int64_t>& v) {
    if (!detail::is_integer_type(element_type))
      throw invalid_argument(std::string("gguf: make_int_array: ") + to_string(element_type) + " is not an integer type");
    const std::size_t w = element_size(element_type);
    const bool sign = detail::is_signed_type(element_type);
    std::vector<std::uint8_t> bytes(v.size() * w);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::int64_t x = v[i];
      const int bits = static_cast<int>(8 * w);
      const bool fits = bits == 64 ? (sign || x >= 0)
                                   : sign ? (x >= -(std::int64_t(1) << (bits - 1)) && x < (std::int64_t(1) << (bits - 1)))
                                          : (x >= 0 && x < (std::int64_t(1) << bits));
      if (!fits)
        throw invalid_argument("gguf: make_int_array: value " + std::to_string(x) + " at " + std::to_string(i) +
                               " does not fit in " + to_string(element_type));
      const auto u = static_cast<std::uint64_t>(x);
      for (std::size_t b = 0; b < w; ++b) bytes[i * w + b] = static_cast<std::uint8_t>(u >> (8 * b));
    }
    return make_packed_array(element_type, std::move(bytes));
  }
  /// An array of FLOAT32 or FLOAT64 values.
  static GgufValue make_float_array(GgufValueType element_type, const std::vector<double>& v) {
    if (element_type != GgufValueType::float32 && element_type != GgufValueType::float64)
      throw invalid_argument(std::string("gguf: make_float_array: ") + to_string(element_type) + " is not FLOAT32/FLOAT64");
    const std::size_t w = element_size(element_type);
    std::vector<std::uint8_t> bytes(v.size() * w);
    for (std::size_t i = 0; i < v.size(); ++i) {
      std::uint64_t u = 0;
      if (w == 4) {
        const float f = static_cast<float>(v[i]);
        std::uint32_t u32;
        std::memcpy(&u32, &f, 4);
        u = u32;
      } else {
        std::memcpy(&u, &v[i], 8);
      }
      for (std::size_t b = 0; b < w; ++b) bytes[i * w + b] = static_cast<std::uint8_t>(u >> (8 * b));
    }
    return make_packed_array(element_type, std::move(bytes));
  }
  /// An array of strings.
  static GgufValue make_string_array(const std::vector<std::string>& v) {
    Array items;
    items.reserve(v.size());
    for (const std::string& s : v) items.push_back(make_string(s));
    return make_array(GgufValueType::string, std::move(items));
  }

  GgufValueType type() const { return m_type; }
  /// Element type of an array (meaningless for scalars).
  GgufValueType element_type() const { return m_element_type; }
  bool is_array() const { return m_type == GgufValueType::array; }
  bool is_string() const { return m_type == GgufValueType::string; }
  bool is_integer() const { return detail::is_integer_type(m_type); }
  bool is_number() const {
    return is_integer() || m_type == GgufValueType::float32 || m_type == GgufValueType::float64;
  }

  /// Any integer type, as int64. \throws rcpu::invalid_argument for other types or a uint64 > INT64_MAX.
  std::int64_t as_int() const {
    if (const auto* u = std::get_if<std::uint64_t>(&m_value)) {
      if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw invalid_argument("gguf: value " + std::to_string(*u) + " does not fit in int64");
      return static_cast<std::int64_t>(*u);
    }
    if (const auto* i = std::get_if<std::int64_t>(&m_value)) return *i;
    throw invalid_argument(std::string("gguf: expected an integer value, found ") + to_string(m_type));
  }
  /// Any numeric type, as double.
  double as_double() const {
    if (const auto* d = std::get_if<double>(&m_value)) return *d;
    if (const auto* u = std::get_if<std::uint64_t>(&m_value)) return static_cast<double>(*u);
    if (const auto* i = std::get_if<std::int64_t>(&m_value)) return static_cast<double>(*i);
    throw invalid_argument(std::string("gguf: expected a number, found ") + to_string(m_type));
  }
  bool as_bool() const {
    if (const auto* b = std::get_if<bool>(&m_value)) return *b;
    throw invalid_argument(std::string("gguf: expected a BOOL, found ") + to_string(m_type));
  }
  const std::string& as_string() const {
    if (const auto* s = std::get_if<std::string>(&m_value)) return *s;
    throw invalid_argument(std::string("gguf: expected a STRING, found ") + to_string(m_type));
  }
  /// Number of elements of an array (0 for a scalar).
  std::size_t size() const {
    if (const auto* p = std::get_if<Packed>(&m_value)) return p->bytes.size() / element_size(m_element_type);
    if (const auto* a = std::get_if<Array>(&m_value)) return a->size();
    return 0;
  }
  /// Element `i` of an array. \throws rcpu::invalid_argument for a scalar or `i` out of range.
  GgufValue at(std::size_t i) const {
    if (!is_array()) throw invalid_argument(std::string("gguf: expected an ARRAY, found ") + to_string(m_type));
    if (i >= size())
      throw invalid_argument("gguf: array index " + std::to_string(i) + " is outside [0, " + std::to_string(size()) + ")");
    if (const auto* a = std::get_if<Array>(&m_value)) return (*a)[i];
    const std::uint8_t* p = std::get<Packed>(m_value).bytes.data() + i * element_size(m_element_type);
    switch (m_element_type) {
      case GgufValueType::uint8: return make_uint(m_element_type, p[0]);
      case GgufValueType::int8: return make_int(m_element_type, static_cast<std::int8_t>(p[0]));
      case GgufValueType::uint16: return make_uint(m_element_type, detail::load_u16(p));
      case GgufValueType::int16: return make_int(m_element_type, static_cast<std::int16_t>(detail::load_u16(p)));
      case GgufValueType::uint32: return make_uint(m_element_type, detail::load_u32(p));
      case GgufValueType::int32: return make_int(m_element_type, static_cast<std::int32_t>(detail::load_u32(p)));
      case GgufValueType::uint64: return make_uint(m_element_type, detail::load_u64(p));
      case GgufValueType::int64: return make_int(m_element_type, static_cast<std::int64_t>(detail::load_u64(p)));
      case GgufValueType::float32: return make_float(m_element_type, detail::load_f32(p));
      case GgufValueType::float64: return make_float(m_element_type, detail::load_f64(p));
      case GgufValueType::boolean: return make_bool(p[0] != 0);
      default: break;
    }
    throw invalid_argument("gguf: corrupt packed array");
  }

  /// An array of strings as a vector. \throws rcpu::invalid_argument for any other value.
  std::vector<std::string> strings() const {
    const auto* a = std::get_if<Array>(&m_value);
    if (a == nullptr || m_element_type != GgufValueType::string)
      throw invalid_argument(std::string("gguf: expected an ARRAY of STRING, found ") + describe());
    std::vector<std::string> out;
    out.reserve(a->size());
    for (const GgufValue& v : *a) out.push_back(v.as_string());
    return out;
  }
  /// An array of numbers as floats.
  std::vector<float> floats() const {
    require_numeric("floats");
    std::vector<float> out(size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(at(i).as_double());
    return out;
  }
  /// An array of integers as int64.
  std::vector<std::int64_t> ints() const {
    require_numeric("ints");
    std::vector<std::int64_t> out(size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = at(i).as_int();
    return out;
  }

  /// The little-endian bytes of an array of scalars (nullptr for any other value).
  const std::vector<std::uint8_t>* packed_bytes() const {
    const auto* p = std::get_if<Packed>(&m_value);
    return p ? &p->bytes : nullptr;
  }
  /// The elements of an array of strings or arrays (nullptr for any other value).
  const Array* elements() const { return std::get_if<Array>(&m_value); }
  /// Any integer value as uint64 bits (two's complement for signed types), any float as double.
  std::uint64_t raw_uint() const {
    if (const auto* u = std::get_if<std::uint64_t>(&m_value)) return *u;
    if (const auto* i = std::get_if<std::int64_t>(&m_value)) return static_cast<std::uint64_t>(*i);
    if (const auto* b = std::get_if<bool>(&m_value)) return *b ? 1u : 0u;
    throw invalid_argument(std::string("gguf: expected an integer value, found ") + to_string(m_type));
  }

  /// Empty when the value is one GGUF can store as its type says (what a writer must check, since the
  /// make_* functions take any type tag): the storage matches the type, an integer fits it, a BOOL is
  /// 0/1, packed array bytes are whole elements of a scalar type, array elements have the element
  /// type. Otherwise, what is wrong.
  std::string problem() const {
    const auto int_fits = [&](GgufValueType t) -> bool {
      const int bits = static_cast<int>(8 * element_size(t));
      if (const auto* u = std::get_if<std::uint64_t>(&m_value)) {
        if (detail::is_signed_type(t)) return bits == 64 ? *u <= std::uint64_t(INT64_MAX) : *u < (std::uint64_t(1) << (bits - 1));
        return bits == 64 || *u < (std::uint64_t(1) << bits);
      }
      if (const auto* i = std::get_if<std::int64_t>(&m_value)) {
        if (!detail::is_signed_type(t)) return *i >= 0 && (bits == 64 || std::uint64_t(*i) < (std::uint64_t(1) << bits));
        return bits == 64 || (*i >= -(std::int64_t(1) << (bits - 1)) && *i < (std::int64_t(1) << (bits - 1)));
      }
      return false;
    };
    switch (m_type) {
      case GgufValueType::float32:
      case GgufValueType::float64:
        return std::get_if<double>(&m_value) ? "" : std::string("a ") + to_string(m_type) + " that holds no number";
      case GgufValueType::boolean: return std::get_if<bool>(&m_value) ? "" : "a BOOL that holds no boolean";
      case GgufValueType::string: return std::get_if<std::string>(&m_value) ? "" : "a STRING that holds no string";
      case GgufValueType::array: {
        if (static_cast<std::uint32_t>(m_element_type) > static_cast<std::uint32_t>(GgufValueType::float64))
          return "an array of unknown element type";
        if (const auto* p = std::get_if<Packed>(&m_value)) {
          if (m_element_type == GgufValueType::string || m_element_type == GgufValueType::array)
            return std::string("packed bytes as an array of ") + to_string(m_element_type);
          if (p->bytes.size() % element_size(m_element_type) != 0)
            return std::to_string(p->bytes.size()) + " bytes are not whole " + to_string(m_element_type) + " elements";
          if (m_element_type == GgufValueType::boolean)
            for (const std::uint8_t b : p->bytes)
              if (b > 1) return "a BOOL element of value " + std::to_string(b);
          return "";
        }
        if (const auto* a = std::get_if<Array>(&m_value)) {
          if (m_element_type != GgufValueType::string && m_element_type != GgufValueType::array)
            return std::string("an array of ") + to_string(m_element_type) + " must be packed (make_int_array etc.)";
          for (std::size_t i = 0; i < a->size(); ++i) {
            const GgufValue& e = (*a)[i];
            if (e.type() != m_element_type)
              return "element " + std::to_string(i) + " is a " + to_string(e.type()) + " in an array of " +
                     to_string(m_element_type);
            const std::string inner = e.problem();
            if (!inner.empty()) return "element " + std::to_string(i) + ": " + inner;
          }
          return "";
        }
        return "an ARRAY that holds no elements";
      }
      default:
        return int_fits(m_type) ? "" : std::string("an integer that does not fit ") + to_string(m_type);
    }
  }

  /// Same type and the same value (bit for bit for floats; arrays element by element).
  friend bool operator==(const GgufValue& a, const GgufValue& b) {
    if (a.m_type != b.m_type || (a.is_array() && a.m_element_type != b.m_element_type)) return false;
    if (const auto* x = std::get_if<double>(&a.m_value)) {
      const auto* y = std::get_if<double>(&b.m_value);
      return y != nullptr && std::memcmp(x, y, sizeof(double)) == 0;
    }
    return a.m_value == b.m_value;
  }
  friend bool operator!=(const GgufValue& a, const GgufValue& b) { return !(a == b); }

  /// Bytes of one packed element of a scalar type (1 for anything else).
  static std::size_t element_size(GgufValueType t) { return static_cast<std::size_t>(detail::min_value_size(t)); }

 private:
  struct Packed {
    std::vector<std::uint8_t> bytes;
    friend bool operator==(const Packed& a, const Packed& b) { return a.bytes == b.bytes; }
  };
  using Storage = std::variant<std::monostate, std::uint64_t, std::int64_t, double, bool, std::string, Array, Packed>;
  GgufValue(GgufValueType t, Storage v) : m_type(t), m_value(std::move(v)) {}

  std::string describe() const {
    return is_array() ? std::string("ARRAY of ") + to_string(m_element_type) : std::string(to_string(m_type));
  }
  void require_numeric(const char* what) const {
    if (std::get_if<Packed>(&m_value) == nullptr || m_element_type == GgufValueType::boolean)
      throw invalid_argument(std::string("gguf: ") + what + "(): expected an ARRAY of numbers, found " + describe());
  }

  GgufValueType m_type = GgufValueType::uint8;
  GgufValueType m_element_type = GgufValueType::uint8;
  Storage m_value;
};

/// One entry of the tensor table.
struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::f32;
  /// Dimensions in GGUF order: shape[0] varies fastest. A PyTorch `d_out x d_in` weight is {d_in, d_out}.
  std::vector<std::uint64_t> shape;
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
  std::uint64_t offset = 0;       ///< relative to the start of the data section, as stored
  std::uint64_t file_offset = 0;  ///< absolute position of the first byte in the file
};

/// A parsed GGUF file. Cheap to copy: the bytes are shared.
class GgufFile {
 public:
  /// Largest nesting of arrays accepted (the format allows arrays of arrays; real files use none).
  static constexpr int max_array_depth = 8;
  /// Largest number of tensor dimensions (ggml's GGML_MAX_DIMS).
  static constexpr std::uint32_t max_dims = 4;

  GgufFile() = default;

  /// Memory-maps (or reads) and parses a file. \throws rcpu::invalid_argument if it cannot be opened or is malformed.
  static GgufFile open(const std::string& path) {
    auto storage = std::make_shared<Storage>();
    storage->map(path);
    return GgufFile(std::move(storage), path);
  }

  /// Parses a copy of `size` bytes at `data`.
  static GgufFile from_memory(const void* data, std::size_t size, std::string name = "<memory>") {
    auto storage = std::make_shared<Storage>();
    const auto* p = static_cast<const std::uint8_t*>(data);
    storage->buffer.assign(p, p + size);
    storage->data = storage->buffer.data();
    storage->size = size;
    return GgufFile(std::move(storage), std::move(name));
  }

  /// Parses a buffer, taking ownership.
  static GgufFile from_buffer(std::vector<std::uint8_t> bytes, std::string name = "<memory>") {
    auto storage = std::make_shared<Storage>();
    storage->buffer = std::move(bytes);
    storage->data = storage->buffer.data();
    storage->size = storage->buffer.size();
    return GgufFile(std::move(storage), std::move(name));
  }

  const std::string& source() const { return m_source; }
  std::uint32_t version() const { return m_version; }
  std::uint64_t alignment() const { return m_alignment; }
  /// Absolute offset of the data section.
  std::uint64_t data_offset() const { return m_data_offset; }
  std::uint64_t file_size() const { return m_storage ? m_storage->size : 0; }

  /// Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return m_metadata; }
  bool has(const std::string& key) const { return m_key_index.count(key) != 0; }
  /// The value of `key`, or nullptr.
  const GgufValue* find(const std::string& key) const {
    const auto it = m_key_index.find(key);
    return it == m_key_index.end() ? nullptr : &m_metadata[it->second].second;
  }
  /// The value of `key`. \throws rcpu::invalid_argument if it is absent.
  const GgufValue& get(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) detail::gguf_fail(m_source, "missing metadata key '" + key + "'");
    return *v;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    const GgufValue* v = find(key);
    return v ? checked(key, [&] { return v->as_string(); }) : fallback;
  }
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const {
    const GgufValue* v = find(key);
    return v ? checked(key, [&] { return v->as_int(); }) : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    const GgufValue* v = find(key);
    return v ? checked(key, [&] { return v->as_double(); }) : fallback;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    const GgufValue* v = find(key);
    return v ? checked(key, [&] { return v->as_bool(); }) : fallback;
  }

  /// The tensor table in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return m_tensors; }
  const GgufTensorInfo* find_tensor(const std::string& name) const {
    const auto it = m_tensor_index.find(name);
    return it == m_tensor_index.end() ? nullptr : &m_tensors[it->second];
  }
  const GgufTensorInfo& tensor(const std::string& name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (t == nullptr) detail::gguf_fail(m_source, "no tensor named '" + name + "'");
    return *t;
  }
  /// Raw bytes of a tensor (n_bytes of them, inside the file: checked when the file was parsed).
  const std::uint8_t* tensor_data(const GgufTensorInfo& t) const { return m_storage->data + t.file_offset; }

  /// All elements of a tensor as floats, in storage order.
  std::vector<float> tensor_values(const GgufTensorInfo& t) const {
    std::vector<float> out(static_cast<std::size_t>(t.n_elements));
    dequantize_checked(t, out.data());
    return out;
  }
  std::vector<float> tensor_values(const std::string& name) const { return tensor_values(tensor(name)); }

  /// A 1- or 2-D tensor as a matrix in the PyTorch convention: rows = shape[1] (1 for a vector),
  /// cols = shape[0]; i.e. a `d_out x d_in` weight for `y = W x`.
  Eigen::MatrixXf tensor_matrix(const std::string& name) const {
    const GgufTensorInfo& t = tensor(name);
    if (t.shape.size() > 2)
      detail::gguf_fail(m_source, "tensor '" + name + "' has " + std::to_string(t.shape.size()) +
                                      " dimensions; a matrix needs 1 or 2");
    const Index cols = t.shape.empty() ? 1 : static_cast<Index>(t.shape[0]);
    const Index rows = t.shape.size() < 2 ? 1 : static_cast<Index>(t.shape[1]);
    // Storage is row-major d_out x d_in, i.e. column-major d_in x d_out: fill that and transpose.
    Eigen::MatrixXf colmajor(cols, rows);
    dequantize_checked(t, colmajor.data());
    return colmajor.transpose();
  }
  /// Rows [first, first + count) of a tensor (a row: shape[0] elements, a whole number of blocks) as
  /// floats, into `out` (count * shape[0] of them): a few rows of a large tensor without the rest.
  /// \throws rcpu::invalid_argument if the rows lie outside the tensor.
  void tensor_rows(const GgufTensorInfo& t, std::uint64_t first, std::uint64_t count, float* out) const {
    const std::uint64_t width = t.shape.empty() ? 1 : t.shape[0];
    const std::uint64_t rows = width == 0 ? 0 : t.n_elements / width;
    if (first > rows || count > rows - first)
      detail::gguf_fail(m_source, "tensor '" + t.name + "': rows [" + std::to_string(first) + ", " +
                                      std::to_string(first + count) + ") of " + std::to_string(rows));
    if (!m_storage || t.file_offset > m_storage->size || t.n_bytes > m_storage->size - t.file_offset)
      detail::gguf_fail(m_source, "tensor '" + t.name + "' does not lie inside this file");
    const std::uint64_t row_bytes = rows == 0 ? 0 : t.n_bytes / rows;
    try {
      dequantize(t.type, tensor_data(t) + first * row_bytes, count * row_bytes, out, count * width);
    } catch (const invalid_argument& e) {
      detail::gguf_fail(m_source, "tensor '" + t.name + "': " + e.what());
    }
  }

  /// Tells the operating system that a tensor's bytes will not be read soon: the whole pages inside
  /// them leave this process's resident memory (the file's mapping is read-only, so nothing is lost;
  /// they are read back from the page cache or disk if used again). A no-op without a mapping.
  void release(const GgufTensorInfo& t) const {
#ifdef RCPU_GGUF_HAVE_MMAP
    if (!m_storage || m_storage->mapping == nullptr || t.file_offset > m_storage->size) return;
    const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(m_storage->data + t.file_offset);
    const std::uintptr_t hi = lo + std::min<std::uint64_t>(t.n_bytes, m_storage->size - t.file_offset);
    const std::uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
    if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
#else
    (void)t;
#endif
  }

  /// A 1-D tensor (or any tensor, flattened) as a vector.
  Eigen::VectorXf tensor_vector(const std::string& name) const {
    const GgufTensorInfo& t = tensor(name);
    Eigen::VectorXf v(static_cast<Index>(t.n_elements));
    dequantize_checked(t, v.data());
    return v;
  }

 private:
  // Owns the bytes: a private read-only mapping, or a buffer.
  struct Storage {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    std::vector<std::uint8_t> buffer;
    void* mapping = nullptr;
    std::size_t mapping_size = 0;

    Storage() = default;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() {
#ifdef RCPU_GGUF_HAVE_MMAP
      if (mapping != nullptr) ::munmap(mapping, mapping_size);
#endif
    }

    void map(const std::string& path) {
#ifdef RCPU_GGUF_HAVE_MMAP
      const int fd = ::open(path.c_str(), O_RDONLY);
      if (fd < 0) detail::gguf_fail(path, "cannot open the file");
      struct stat st;
      if (::fstat(fd, &st) != 0 || st.st_size < 0) {
        ::close(fd);
        detail::gguf_fail(path, "cannot read the file's size");
      }
      size = static_cast<std::size_t>(st.st_size);
      if (size > 0) {
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
          ::close(fd);
          detail::gguf_fail(path, "cannot memory-map the file");
        }
        mapping = p;
        mapping_size = size;
        data = static_cast<const std::uint8_t*>(p);
      }
      ::close(fd);
#else
      std::ifstream in(path, std::ios::binary);
      if (!in) detail::gguf_fail(path, "cannot open the file");
      buffer.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      data = buffer.data();
      size = buffer.size();
#endif
    }
  };

  // Bounds-checked little-endian reader over the file's bytes.
  class Cursor {
   public:
    Cursor(const std::uint8_t* data, std::uint64_t size, const std::string& source)
        : m_data(data), m_size(size), m_source(source) {}
    std::uint64_t pos() const { return m_pos; }
    std::uint64_t remaining() const { return m_size - m_pos; }
    const std::uint8_t* take(std::uint64_t n, const char* what) {
      if (n > remaining()) {
        std::ostringstream os;
        os << "truncated file: reading " << what << " at offset " << m_pos << " needs " << n
           << " bytes, but the file has " << m_size;
        detail::gguf_fail(m_source, os.str());
      }
      const std::uint8_t* p = m_data + m_pos;
      m_pos += n;
      return p;
    }
    std::uint8_t u8(const char* what) { return *take(1, what); }
    std::uint16_t u16(const char* what) { return detail::load_u16(take(2, what)); }
    std::uint32_t u32(const char* what) { return detail::load_u32(take(4, what)); }
    std::uint64_t u64(const char* what) { return detail::load_u64(take(8, what)); }
    std::string str(const char* what) {
      const std::uint64_t at = m_pos;
      const std::uint64_t len = u64(what);
      if (len > remaining()) {
        std::ostringstream os;
        os << what << " at offset " << at << " claims a length of " << len << " bytes, but only " << remaining()
           << " bytes follow";
        detail::gguf_fail(m_source, os.str());
      }
      const std::uint8_t* p = take(len, what);
      return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
    }

   private:
    const std::uint8_t* m_data;
    std::uint64_t m_size;
    std::uint64_t m_pos = 0;
    const std::string& m_source;
  };

  GgufFile(std::shared_ptr<Storage> storage, std::string source)
      : m_storage(std::move(storage)), m_source(std::move(source)) {
    parse();
  }

  template <typename F>
  auto checked(const std::string& key, F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const invalid_argument& e) {
      detail::gguf_fail(m_source, "metadata key '" + key + "': " + e.what());
    }
  }

  void dequantize_checked(const GgufTensorInfo& t, float* out) const {
    // Guards against a GgufTensorInfo that belongs to another file.
    if (!m_storage || t.file_offset > m_storage->size || t.n_bytes > m_storage->size - t.file_offset)
      detail::gguf_fail(m_source, "tensor '" + t.name + "' does not lie inside this file");
    try {
      dequantize(t.type, tensor_data(t), t.n_bytes, out, t.n_elements);
    } catch (const invalid_argument& e) {
      detail::gguf_fail(m_source, "tensor '" + t.name + "': " + e.what());
    }
  }

  GgufValue read_value(Cursor& c, GgufValueType type, int depth, const std::string& key) {
    switch (type) {
      case GgufValueType::uint8: return GgufValue::make_uint(type, c.u8("a UINT8 value"));
      case GgufValueType::int8:
        return GgufValue::make_int(type, static_cast<std::int8_t>(c.u8("an INT8 value")));
      case GgufValueType::uint16: return GgufValue::make_uint(type, c.u16("a UINT16 value"));
      case GgufValueType::int16:
        return GgufValue::make_int(type, static_cast<std::int16_t>(c.u16("an INT16 value")));
      case GgufValueType::uint32: return GgufValue::make_uint(type, c.u32("a UINT32 value"));
      case GgufValueType::int32:
        return GgufValue::make_int(type, static_cast<std::int32_t>(c.u32("an INT32 value")));
      case GgufValueType::uint64: return GgufValue::make_uint(type, c.u64("a UINT64 value"));
      case GgufValueType::int64:
        return GgufValue::make_int(type, static_cast<std::int64_t>(c.u64("an INT64 value")));
      case GgufValueType::float32: {
        const std::uint32_t u = c.u32("a FLOAT32 value");
        float f;
        std::memcpy(&f, &u, sizeof f);
        return GgufValue::make_float(type, f);
      }
      case GgufValueType::float64: {
        const std::uint64_t u = c.u64("a FLOAT64 value");
        double d;
        std::memcpy(&d, &u, sizeof d);
        return GgufValue::make_float(type, d);
      }
      case GgufValueType::boolean: {
        const std::uint64_t at = c.pos();
        const std::uint8_t b = c.u8("a BOOL value");
        if (b > 1)
          detail::gguf_fail(m_source, "metadata key '" + key + "': BOOL at offset " + std::to_string(at) +
                                          " has the value " + std::to_string(b) + " (must be 0 or 1)");
        return GgufValue::make_bool(b != 0);
      }
      case GgufValueType::string: return GgufValue::make_string(c.str("a STRING value"));
      case GgufValueType::array: {
        if (depth >= max_array_depth)
          detail::gguf_fail(m_source, "metadata key '" + key + "': arrays nested deeper than " +
                                          std::to_string(max_array_depth));
        const std::uint64_t at = c.pos();
        const std::uint32_t raw = c.u32("an array's element type");
        if (raw > static_cast<std::uint32_t>(GgufValueType::float64))
          detail::gguf_fail(m_source, "metadata key '" + key + "': array at offset " + std::to_string(at) +
                                          " has the unknown element type " + std::to_string(raw));
        const auto et = static_cast<GgufValueType>(raw);
        const std::uint64_t count = c.u64("an array's length");
        // Bound the count by the bytes left before allocating anything for it.
        if (count > c.remaining() / detail::min_value_size(et)) {
          std::ostringstream os;
          os << "metadata key '" << key << "': array at offset " << at << " claims " << count << " elements of type "
             << to_string(et) << ", more than the " << c.remaining() << " remaining bytes can hold";
          detail::gguf_fail(m_source, os.str());
        }
        if (et != GgufValueType::string && et != GgufValueType::array) {
          // Scalars stay packed: check booleans, then copy the bytes as they are.
          const std::uint64_t n = count * detail::min_value_size(et);
          const std::uint64_t start = c.pos();
          const std::uint8_t* p = c.take(n, "an array's elements");
          if (et == GgufValueType::boolean)
            for (std::uint64_t i = 0; i < count; ++i)
              if (p[i] > 1)
                detail::gguf_fail(m_source, "metadata key '" + key + "': BOOL at offset " + std::to_string(start + i) +
                                                " has the value " + std::to_string(p[i]) + " (must be 0 or 1)");
          return GgufValue::make_packed_array(et, std::vector<std::uint8_t>(p, p + n));
        }
        GgufValue::Array items;
        items.reserve(static_cast<std::size_t>(count));
        for (std::uint64_t i = 0; i < count; ++i) items.push_back(read_value(c, et, depth + 1, key));
        return GgufValue::make_array(et, std::move(items));
      }
    }
    detail::gguf_fail(m_source, "metadata key '" + key + "' has the unknown type " +
                                    std::to_string(static_cast<std::uint32_t>(type)));
  }

  void parse() {
    const std::uint64_t size = m_storage->size;
    Cursor c(m_storage->data, size, m_source);
    if (size < 4) detail::gguf_fail(m_source, "file of " + std::to_string(size) + " bytes is too small for GGUF");
    const std::uint8_t* magic = c.take(4, "the magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) {
      std::ostringstream os;
      os << "bad magic (expected 'GGUF', found bytes " << std::hex << int(magic[0]) << ' ' << int(magic[1]) << ' '
         << int(magic[2]) << ' ' << int(magic[3]) << ")";
      detail::gguf_fail(m_source, os.str());
    }
    m_version = c.u32("the version");
    if (m_version != 2 && m_version != 3) {
      // A big-endian file shows its version byte-swapped.
      if ((m_version & 0xFFFFu) == 0 && (m_version >> 24) >= 1 && (m_version >> 24) <= 3)
        detail::gguf_fail(m_source, "big-endian GGUF files are not supported");
      detail::gguf_fail(m_source, "unsupported GGUF version " + std::to_string(m_version) +
                                      (m_version == 1 ? " (version 1 used 32-bit counts; re-convert the file)" : "") +
                                      ", rcpu reads versions 2 and 3");
    }
    const std::uint64_t n_tensors = c.u64("the tensor count");
    const std::uint64_t n_kv = c.u64("the metadata count");
    // Minimum bytes per entry: key (8) + type (4) + 1; tensor: name (8) + n_dims (4) + type (4) + offset (8).
    if (n_kv > c.remaining() / 13)
      detail::gguf_fail(m_source, "metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                                      std::to_string(c.remaining()) + " bytes that follow the header");
    if (n_tensors > c.remaining() / 24)
      detail::gguf_fail(m_source, "tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                                      std::to_string(c.remaining()) + " bytes that follow the header");

    m_metadata.reserve(static_cast<std::size_t>(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::uint64_t at = c.pos();
      std::string key = c.str("a metadata key");
      if (m_key_index.count(key))
        detail::gguf_fail(m_source, "duplicate metadata key '" + key + "' at offset " + std::to_string(at));
      const std::uint32_t raw = c.u32("a metadata value type");
      if (raw > static_cast<std::uint32_t>(GgufValueType::float64))
        detail::gguf_fail(m_source, "metadata key '" + key + "' has the unknown value type " + std::to_string(raw));
      GgufValue v = read_value(c, static_cast<GgufValueType>(raw), 0, key);
      m_key_index.emplace(key, m_metadata.size());
      m_metadata.emplace_back(std::move(key), std::move(v));
    }

    m_alignment = 32;
    if (const GgufValue* a = find("general.alignment")) {
      if (!a->is_integer())
        detail::gguf_fail(m_source, std::string("general.alignment must be an integer, found ") + to_string(a->type()));
      const std::int64_t al = a->as_int();
      if (al <= 0 || al > (1 << 30) || (al & (al - 1)) != 0)
        detail::gguf_fail(m_source, "general.alignment = " + std::to_string(al) + " is not a power of two in [1, 2^30]");
      m_alignment = static_cast<std::uint64_t>(al);
    }

    m_tensors.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      const std::uint64_t at = c.pos();
      t.name = c.str("a tensor name");
      if (m_tensor_index.count(t.name))
        detail::gguf_fail(m_source, "duplicate tensor name '" + t.name + "' at offset " + std::to_string(at));
      const std::uint32_t n_dims = c.u32("a tensor's dimension count");
      if (n_dims > max_dims)
        detail::gguf_fail(m_source, "tensor '" + t.name + "' has " + std::to_string(n_dims) +
                                        " dimensions, more than " + std::to_string(max_dims));
      t.n_elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const std::uint64_t ne = c.u64("a tensor dimension");
        if (ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
            !detail::checked_mul(t.n_elements, ne, t.n_elements) ||
            t.n_elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          detail::gguf_fail(m_source, "tensor '" + t.name + "': the element count overflows (dimension " +
                                          std::to_string(d) + " = " + std::to_string(ne) + ")");
        t.shape.push_back(ne);
      }
      const std::uint32_t type = c.u32("a tensor type");
      const GgmlTypeTraits* traits = ggml_type_traits(type);
      if (traits == nullptr)
        detail::gguf_fail(m_source, "tensor '" + t.name + "' has the unknown ggml type " + std::to_string(type));
      t.type = static_cast<GgmlType>(type);
      const std::uint64_t row = t.shape.empty() ? 1 : t.shape[0];
      if (row % traits->block_size != 0)
        detail::gguf_fail(m_source, "tensor '" + t.name + "': first dimension " + std::to_string(row) +
                                        " is not a multiple of the " + traits->name + " block size " +
                                        std::to_string(traits->block_size));
      if (!detail::checked_mul(t.n_elements / traits->block_size, traits->type_size, t.n_bytes))
        detail::gguf_fail(m_source, "tensor '" + t.name + "': its byte size overflows");
      t.offset = c.u64("a tensor offset");
      if (t.offset % m_alignment != 0)
        detail::gguf_fail(m_source, "tensor '" + t.name + "': offset " + std::to_string(t.offset) +
                                        " is not a multiple of the alignment " + std::to_string(m_alignment));
      m_tensor_index.emplace(t.name, m_tensors.size());
      m_tensors.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const std::uint64_t end_of_info = c.pos();
    const std::uint64_t pad = (m_alignment - end_of_info % m_alignment) % m_alignment;
    m_data_offset = end_of_info + pad;
    if (m_tensors.empty()) return;
    if (m_data_offset > size)
      detail::gguf_fail(m_source, "truncated file: the data section would start at offset " +
                                      std::to_string(m_data_offset) + ", past the end of the file (" +
                                      std::to_string(size) + " bytes)");
    const std::uint64_t data_size = size - m_data_offset;
    std::vector<std::pair<std::uint64_t, std::size_t>> order;
    order.reserve(m_tensors.size());
    for (std::size_t i = 0; i < m_tensors.size(); ++i) {
      GgufTensorInfo& t = m_tensors[i];
      std::uint64_t end = 0;
      if (!detail::checked_add(t.offset, t.n_bytes, end) || end > data_size) {
        std::ostringstream os;
        os << "tensor '" << t.name << "' (" << t.n_bytes << " bytes at data offset " << t.offset
           << ") extends past the end of the file (data section has " << data_size << " bytes)";
        detail::gguf_fail(m_source, os.str());
      }
      t.file_offset = m_data_offset + t.offset;
      order.emplace_back(t.offset, i);
    }
    std::sort(order.begin(), order.end());
    for (std::size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& a = m_tensors[order[k - 1].second];
      const GgufTensorInfo& b = m_tensors[order[k].second];
      if (a.n_bytes > 0 && b.n_bytes > 0 && a.offset + a.n_bytes > b.offset)
        detail::gguf_fail(m_source, "tensors '" + a.name + "' and '" + b.name + "' overlap in the data section");
    }
  }

  std::shared_ptr<Storage> m_storage;
  std::string m_source;
  std::uint32_t m_version = 0;
  std::uint64_t m_alignment = 32;
  std::uint64_t m_data_offset = 0;
  std::vector<std::pair<std::string, GgufValue>> m_metadata;
  std::unordered_map<std::string, std::size_t> m_key_index;
  std::vector<GgufTensorInfo> m_tensors;
  std::unordered_map<std::string, std::size_t> m_tensor_index;
};

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_GGUF_HPP
