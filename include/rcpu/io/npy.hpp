// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_NPY_HPP
#define RCPU_IO_NPY_HPP

/// \file npy.hpp
/// Reader and writer of NumPy's .npy files (format versions 1.0, 2.0 and 3.0), so that Python (or any
/// other) pipelines can hand weights and activations to rcpu without C++ glue.
///
/// Reads float32 and float64 arrays (and int32/int64 index arrays), little- or big-endian, C or
/// Fortran order, of any dimension count (the loaders then ask for 0-D, 1-D or 2-D). Every size in the
/// header is checked against the bytes the file really has before anything is read, so a malformed or
/// truncated file throws rcpu::invalid_argument naming the file and the problem, and never reads past
/// its end. Writes little- or big-endian, C or Fortran order, float32/float64/int64; save_npy()
/// writes a temporary sibling and renames it, so a reader never sees a half-written file.
///
/// Optional part of rcpu: not included by rcpu.hpp (which is the CPU maths); include it explicitly.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"

namespace rcpu {
namespace io {

/// Element types rcpu reads and writes in .npy files.
enum class NpyDtype { float32, float64, int32, int64 };

/// Byte order of the elements in a file.
enum class ByteOrder { little, big };

inline const char* to_string(NpyDtype t) {
  switch (t) {
    case NpyDtype::float32: return "float32";
    case NpyDtype::float64: return "float64";
    case NpyDtype::int32: return "int32";
    case NpyDtype::int64: return "int64";
  }
  return "unknown";
}

inline std::size_t item_size(NpyDtype t) { return t == NpyDtype::float32 || t == NpyDtype::int32 ? 4 : 8; }

inline bool is_floating(NpyDtype t) { return t == NpyDtype::float32 || t == NpyDtype::float64; }

/// The byte order of this machine.
inline ByteOrder native_byte_order() {
  const std::uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1 ? ByteOrder::little : ByteOrder::big;
}

/// What a .npy header says.
struct NpyHeader {
  NpyDtype dtype = NpyDtype::float64;
  ByteOrder byte_order = ByteOrder::little;
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;  ///< empty for a 0-D array (one element)
  std::uint64_t data_offset = 0;     ///< bytes before the first element
  int major_version = 1;

  /// Number of elements (1 for 0-D).
  std::uint64_t count() const {
    std::uint64_t n = 1;
    for (std::uint64_t s : shape) n *= s;  // overflow was excluded when the header was parsed
    return n;
  }
  std::uint64_t data_bytes() const { return count() * item_size(dtype); }
  /// The dtype as NumPy spells it, e.g. "<f4".
  std::string descr() const {
    std::string d = byte_order == ByteOrder::little ? "<" : ">";
    switch (dtype) {
      case NpyDtype::float32: return d + "f4";
      case NpyDtype::float64: return d + "f8";
      case NpyDtype::int32: return d + "i4";
      case NpyDtype::int64: return d + "i8";
    }
    return d;
  }
  /// The shape as Python prints it: "()", "(5,)", "(2, 3)".
  std::string shape_string() const {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) s += ",";
    return s + ")";
  }
};

namespace detail {

[[noreturn]] inline void npy_fail(const std::string& source, const std::string& message) {
  throw invalid_argument("npy: " + source + ": " + message);
}

inline bool npy_checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

// Parser of the header's Python dict literal: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
class NpyDictParser {
 public:
  NpyDictParser(const std::string& text, const std::string& source) : m_s(text), m_src(source) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++m_i;
        break;
      }
      const std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) fail("the header repeats 'descr'");
        parse_descr(h, peek() == '\'' || peek() == '"' ? string_literal() : std::string());
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_order) fail("the header repeats 'fortran_order'");
        h.fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        if (have_shape) fail("the header repeats 'shape'");
        h.shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header (expected descr, fortran_order, shape)");
      }
      skip_ws();
      if (peek() == ',') {
        ++m_i;
        continue;
      }
      skip_ws();
      expect('}');
      break;
    }
    skip_ws();
    if (m_i != m_s.size()) fail("unexpected text after the header dictionary");
    if (!have_descr || !have_order || !have_shape)
      fail("the header lacks " + std::string(!have_descr ? "'descr'" : !have_order ? "'fortran_order'" : "'shape'"));
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { npy_fail(m_src, "malformed header: " + msg); }
  char peek() const { return m_i < m_s.size() ? m_s[m_i] : '\0'; }
  void skip_ws() {
    while (m_i < m_s.size() && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n' || m_s[m_i] == '\r')) ++m_i;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at header offset " + std::to_string(m_i));
    ++m_i;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string at header offset " + std::to_string(m_i));
    ++m_i;
    const std::size_t start = m_i;
    while (m_i < m_s.size() && m_s[m_i] != q) {
      if (m_s[m_i] == '\\') fail("escapes in header strings are not supported");
      ++m_i;
    }
    if (m_i >= m_s.size()) fail("unterminated string");
    return m_s.substr(start, m_i++ - start);
  }
  bool boolean() {
    if (m_s.compare(m_i, 4, "True") == 0) {
      m_i += 4;
      return true;
    }
    if (m_s.compare(m_i, 5, "False") == 0) {
      m_i += 5;
      return false;
    }
    fail("'fortran_order' must be True or False");
  }
  std::vector<std::uint64_t> tuple() {
    std::vector<std::uint64_t> dims;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++m_i;
        return dims;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("'shape' must be a tuple of non-negative integers");
      std::uint64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const std::uint64_t digit = std::uint64_t(peek() - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("a dimension overflows 64 bits");
        v = v * 10 + digit;
        ++m_i;
      }
      if (peek() == 'L') ++m_i;  // Python 2 longs
      dims.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++m_i;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in 'shape'");
      }
      if (dims.size() > 32) fail("more than 32 dimensions");
    }
  }
  void parse_descr(NpyHeader& h, const std::string& d) const {
    if (d.size() != 3) unsupported(d);
    switch (d[0]) {
      case '<': h.byte_order = ByteOrder::little; break;
      case '>': h.byte_order = ByteOrder::big; break;
      case '=': h.byte_order = native_byte_order(); break;
      default: unsupported(d);
    }
    const std::string t = d.substr(1);
    if (t == "f4") h.dtype = NpyDtype::float32;
    else if (t == "f8") h.dtype = NpyDtype::float64;
    else if (t == "i4") h.dtype = NpyDtype::int32;
    else if (t == "i8") h.dtype = NpyDtype::int64;
    else unsupported(d);
  }
  [[noreturn]] void unsupported(const std::string& d) const {
    npy_fail(m_src, "unsupported dtype '" + (d.empty() ? std::string("(not a string)") : d) +
                        "' (rcpu reads float32 and float64 data, int32 and int64 indices)");
  }

  const std::string& m_s;
  const std::string& m_src;
  std::size_t m_i = 0;
};

inline std::uint32_t npy_le_u32(const unsigned char* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

// Converts `n` elements stored as `h` describes into Out, swapping bytes where the file's order differs.
template <typename Out>
void npy_decode(const char* bytes, std::size_t n, const NpyHeader& h, Out* out) {
  const std::size_t sz = item_size(h.dtype);
  const bool swap = h.byte_order != native_byte_order();
  unsigned char tmp[8];
  for (std::size_t i = 0; i < n; ++i) {
    std::memcpy(tmp, bytes + i * sz, sz);
    if (swap) std::reverse(tmp, tmp + sz);
    switch (h.dtype) {
      case NpyDtype::float32: {
        float v;
        std::memcpy(&v, tmp, 4);
        out[i] = static_cast<Out>(v);
        break;
      }
      case NpyDtype::float64: {
        double v;
        std::memcpy(&v, tmp, 8);
        out[i] = static_cast<Out>(v);
        break;
      }
      case NpyDtype::int32: {
        std::int32_t v;
        std::memcpy(&v, tmp, 4);
        out[i] = static_cast<Out>(v);
        break;
      }
      case NpyDtype::int64: {
        std::int64_t v;
        std::memcpy(&v, tmp, 8);
        out[i] = static_cast<Out>(v);
        break;
      }
    }
  }
}

template <typename In>
void npy_encode(const In* in, std::size_t n, NpyDtype dtype, ByteOrder order, char* bytes) {
  const std::size_t sz = item_size(dtype);
  const bool swap = order != native_byte_order();
  unsigned char tmp[8];
  for (std::size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case NpyDtype::float32: {
        const float v = static_cast<float>(in[i]);
        std::memcpy(tmp, &v, 4);
        break;
      }
      case NpyDtype::float64: {
        const double v = static_cast<double>(in[i]);
        std::memcpy(tmp, &v, 8);
        break;
      }
      case NpyDtype::int32: {
        const std::int32_t v = static_cast<std::int32_t>(in[i]);
        std::memcpy(tmp, &v, 4);
        break;
      }
      case NpyDtype::int64: {
        const std::int64_t v = static_cast<std::int64_t>(in[i]);
        std::memcpy(tmp, &v, 8);
        break;
      }
    }
    if (swap) std::reverse(tmp, tmp + sz);
    std::memcpy(bytes + i * sz, tmp, sz);
  }
}

template <typename T>
constexpr NpyDtype npy_dtype_of() {
  if constexpr (std::is_same<T, float>::value) return NpyDtype::float32;
  else if constexpr (std::is_same<T, double>::value) return NpyDtype::float64;
  else if constexpr (std::is_same<T, std::int32_t>::value) return NpyDtype::int32;
  else return NpyDtype::int64;
}

}  // namespace detail

/// Parses the header of a .npy stream positioned at its first byte and checks it against the
/// `stream_size` bytes the stream holds in all. Leaves the stream at the first data byte.
/// \param source  name used in error messages (usually the path)
/// \throws rcpu::invalid_argument on a bad magic string, version, header, dtype, or a data size that
///         does not match the shape.
inline NpyHeader read_npy_header(std::istream& in, std::uint64_t stream_size, const std::string& source) {
  constexpr std::uint64_t max_header = 1u << 20;  // NumPy writes a few hundred bytes; refuse absurd lengths
  unsigned char pre[12];
  if (stream_size < 10) detail::npy_fail(source, "too short for a .npy file (" + std::to_string(stream_size) + " bytes)");
  in.read(reinterpret_cast<char*>(pre), 10);
  if (in.gcount() != 10) detail::npy_fail(source, "could not read the file's first 10 bytes");
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) detail::npy_fail(source, "not a .npy file (bad magic string)");
  NpyHeader h;
  h.major_version = pre[6];
  std::uint64_t prefix = 0, hlen = 0;
  if (pre[6] == 1) {
    prefix = 10;
    hlen = std::uint64_t(pre[8]) | std::uint64_t(pre[9]) << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    prefix = 12;
    if (stream_size < 12) detail::npy_fail(source, "truncated in the header length");
    in.read(reinterpret_cast<char*>(pre + 10), 2);
    if (in.gcount() != 2) detail::npy_fail(source, "truncated in the header length");
    hlen = detail::npy_le_u32(pre + 8);
  } else {
    detail::npy_fail(source, "unsupported .npy format version " + std::to_string(pre[6]) + "." +
                                 std::to_string(pre[7]) + " (rcpu reads 1.0, 2.0 and 3.0)");
  }
  if (hlen > max_header) detail::npy_fail(source, "header length " + std::to_string(hlen) + " is implausibly large");
  if (prefix + hlen > stream_size)
    detail::npy_fail(source, "truncated: the header claims " + std::to_string(hlen) + " bytes but the file has " +
                                 std::to_string(stream_size) + " in all");
  std::string text(static_cast<std::size_t>(hlen), '\0');
  in.read(&text[0], std::streamsize(hlen));
  if (std::uint64_t(in.gcount()) != hlen) detail::npy_fail(source, "could not read the header");
  if (text.empty() || text.back() != '\n') detail::npy_fail(source, "malformed header: it must end with a newline");
  for (char c : text)
    if (c == '\0') detail::npy_fail(source, "malformed header: it contains a NUL byte");
  h = detail::NpyDictParser(text, source).parse();
  h.major_version = pre[6];
  h.data_offset = prefix + hlen;

  std::uint64_t count = 1, bytes = 0;
  for (std::uint64_t s : h.shape)
    if (!detail::npy_checked_mul(count, s, count))
      detail::npy_fail(source, "shape " + h.shape_string() + " overflows 64 bits");
  if (!detail::npy_checked_mul(count, item_size(h.dtype), bytes))
    detail::npy_fail(source, "shape " + h.shape_string() + " overflows 64 bits");
  const std::uint64_t have = stream_size - h.data_offset;
  if (have < bytes)
    detail::npy_fail(source, "truncated: shape " + h.shape_string() + " of " + h.descr() + " needs " +
                                 std::to_string(bytes) + " bytes of data, the file has " + std::to_string(have));
  if (have > bytes)
    detail::npy_fail(source, std::to_string(have - bytes) + " unexpected bytes after the data of shape " +
                                 h.shape_string() + " (" + h.descr() + ")");
  return h;
}

/// Opens a .npy file and reads it in pieces: the whole array, or a 2-D array a block of rows at a time
/// (for activations too large to hold at once). Move-only.
class NpyReader {
 public:
  /// \throws rcpu::invalid_argument if the file cannot be opened or its header is bad (see read_npy_header).
  explicit NpyReader(const std::string& path) : m_path(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) detail::npy_fail(path, "is a directory, not a .npy file");
    m_in.open(path, std::ios::binary);
    if (!m_in) detail::npy_fail(path, "cannot open the file for reading");
    m_in.seekg(0, std::ios::end);
    const std::streamoff size = m_in.tellg();
    if (size < 0) detail::npy_fail(path, "cannot determine the file size");
    m_in.seekg(0, std::ios::beg);
    m_header = read_npy_header(m_in, std::uint64_t(size), path);
  }

  const NpyHeader& header() const { return m_header; }
  const std::string& path() const { return m_path; }
  Index dims() const { return Index(m_header.shape.size()); }

  /// Rows of a 2-D array (tokens for activations). \throws rcpu::invalid_argument unless the array is 2-D.
  Index rows() const {
    require_2d();
    return Index(m_header.shape[0]);
  }
  /// Columns of a 2-D array (channels for activations).
  Index cols() const {
    require_2d();
    return Index(m_header.shape[1]);
  }
  /// Rows not yet returned by read_rows().
  Index rows_left() const { return rows() - m_next_row; }

  /// The whole array as a Scalar matrix: 2-D arrays keep their shape, 1-D arrays of length n become
  /// n x 1, 0-D arrays 1 x 1. \throws rcpu::invalid_argument for 3 or more dimensions, or a dtype that is
  /// not float32/float64 when Scalar is floating point.
  template <typename Scalar>
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> read_all() {
    check_dtype<Scalar>();
    if (m_header.shape.size() > 2)
      detail::npy_fail(m_path, "has shape " + m_header.shape_string() + "; rcpu reads arrays of at most 2 dimensions");
    const Index r = m_header.shape.empty() ? 1 : Index(m_header.shape[0]);
    const Index c = m_header.shape.size() == 2 ? Index(m_header.shape[1]) : 1;
    check_index_range(r, c);
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> out(r, c);
    if (r * c == 0) return out;
    std::vector<char> buf(static_cast<std::size_t>(m_header.data_bytes()));
    seek(m_header.data_offset);
    read_bytes(buf.data(), buf.size());
    if (m_header.fortran_order || c == 1) {
      detail::npy_decode(buf.data(), std::size_t(r * c), m_header, out.data());  // column-major, as Eigen
    } else {
      Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> tmp(r, c);
      detail::npy_decode(buf.data(), std::size_t(r * c), m_header, tmp.data());
      out = tmp;
    }
    return out;
  }

  /// The next `count` rows (fewer at the end) of a 2-D array, as a Scalar matrix; an empty matrix when
  /// all rows were read. C-order files are read in one piece per call, Fortran-order ones per column.
  template <typename Scalar>
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> read_rows(Index count) {
    check_dtype<Scalar>();
    require_2d();
    if (count < 1) detail::npy_fail(m_path, "read_rows: count = " + std::to_string(count) + " must be >= 1");
    const Index r = rows(), c = cols();
    check_index_range(r, c);
    const Index n = std::min(count, r - m_next_row);
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> out(n, c);
    if (n == 0 || c == 0) {
      m_next_row += n;
      return out;
    }
    const std::uint64_t sz = item_size(m_header.dtype);
    if (!m_header.fortran_order) {
      std::vector<char> buf(static_cast<std::size_t>(std::uint64_t(n) * std::uint64_t(c) * sz));
      seek(m_header.data_offset + std::uint64_t(m_next_row) * std::uint64_t(c) * sz);
      read_bytes(buf.data(), buf.size());
      Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> tmp(n, c);
      detail::npy_decode(buf.data(), std::size_t(n * c), m_header, tmp.data());
      out = tmp;
    } else {
      std::vector<char> buf(static_cast<std::size_t>(std::uint64_t(n) * sz));
      for (Index j = 0; j < c; ++j) {
        seek(m_header.data_offset + (std::uint64_t(j) * std::uint64_t(r) + std::uint64_t(m_next_row)) * sz);
        read_bytes(buf.data(), buf.size());
        detail::npy_decode(buf.data(), std::size_t(n), m_header, out.col(j).data());
      }
    }
    m_next_row += n;
    return out;
  }

 private:
  template <typename Scalar>
  void check_dtype() const {
    if (std::is_floating_point<Scalar>::value && !is_floating(m_header.dtype))
      detail::npy_fail(m_path, "has dtype " + m_header.descr() + " (" + to_string(m_header.dtype) +
                                   "); expected float32 or float64 data");
    if (std::is_integral<Scalar>::value && is_floating(m_header.dtype))
      detail::npy_fail(m_path, "has dtype " + m_header.descr() + " (" + to_string(m_header.dtype) +
                                   "); expected integer indices (int32 or int64)");
  }
  void require_2d() const {
    if (m_header.shape.size() != 2)
      detail::npy_fail(m_path, "has shape " + m_header.shape_string() + "; expected a 2-D array");
  }
  void check_index_range(Index r, Index c) const {
    const std::uint64_t limit = std::uint64_t(std::numeric_limits<Index>::max());
    if (std::uint64_t(r) > limit || std::uint64_t(c) > limit || m_header.count() > limit)
      detail::npy_fail(m_path, "shape " + m_header.shape_string() + " is too large");
  }
  void seek(std::uint64_t offset) {
    m_in.clear();
    m_in.seekg(std::streamoff(offset), std::ios::beg);
    if (!m_in) detail::npy_fail(m_path, "seek failed");
  }
  void read_bytes(char* dst, std::size_t n) {
    m_in.read(dst, std::streamsize(n));
    if (std::size_t(m_in.gcount()) != n) detail::npy_fail(m_path, "read failed (the file changed while reading?)");
  }

  std::string m_path;
  std::ifstream m_in;
  NpyHeader m_header;
  Index m_next_row = 0;
};

/// Loads a 2-D float32/float64 array as a Scalar matrix.
/// \throws rcpu::invalid_argument if the array is not 2-D or not floating point (and as NpyReader).
template <typename Scalar>
Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> load_npy_matrix(const std::string& path) {
  static_assert(std::is_floating_point<Scalar>::value, "load_npy_matrix: Scalar must be float or double");
  NpyReader r(path);
  if (r.dims() != 2)
    detail::npy_fail(path, "has shape " + r.header().shape_string() + "; expected a 2-D array (a matrix)");
  return r.read_all<Scalar>();
}

/// Loads a vector: a 1-D array, or a 2-D one with a single row or column.
template <typename Scalar>
Eigen::Matrix<Scalar, Eigen::Dynamic, 1> load_npy_vector(const std::string& path) {
  static_assert(std::is_floating_point<Scalar>::value, "load_npy_vector: Scalar must be float or double");
  NpyReader r(path);
  const auto& s = r.header().shape;
  if (!(s.size() == 1 || (s.size() == 2 && (s[0] == 1 || s[1] == 1))))
    detail::npy_fail(path, "has shape " + r.header().shape_string() + "; expected a vector (1-D array)");
  const auto m = r.read_all<Scalar>();
  return Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(m.data(), m.size());
}

/// Loads a 1-D array of int32/int64 indices (e.g. kept units).
inline std::vector<Index> load_npy_indices(const std::string& path) {
  NpyReader r(path);
  if (r.dims() != 1)
    detail::npy_fail(path, "has shape " + r.header().shape_string() + "; expected a 1-D array of indices");
  const auto m = r.read_all<std::int64_t>();
  return std::vector<Index>(m.data(), m.data() + m.size());
}

/// Loads a single integer: a 0-D array or a 1-D array of length 1, int32 or int64.
inline std::int64_t load_npy_int(const std::string& path) {
  NpyReader r(path);
  if (r.header().count() != 1 || r.dims() > 1)
    detail::npy_fail(path, "has shape " + r.header().shape_string() + "; expected a single integer");
  return r.read_all<std::int64_t>()(0, 0);
}

/// How to write a .npy file.
struct NpyWriteOptions {
  /// Element type in the file; the default writes float data as its own type and integers as int64.
  enum class Type { automatic, float32, float64, int64 } type = Type::automatic;
  ByteOrder byte_order = ByteOrder::little;  ///< NumPy's default on every common machine
  bool fortran_order = false;                ///< C order (row-major) unless asked
};

namespace detail {

inline std::string npy_header_bytes(NpyDtype dtype, ByteOrder order, bool fortran, const std::vector<std::uint64_t>& shape) {
  NpyHeader h;
  h.dtype = dtype;
  h.byte_order = order;
  h.shape = shape;
  const std::string dict = "{'descr': '" + h.descr() + "', 'fortran_order': " + (fortran ? "True" : "False") +
                           ", 'shape': " + h.shape_string() + ", }";
  // Pad with spaces and a newline so that the data starts on a 64-byte boundary (NumPy's rule);
  // version 2.0 (4-byte length) only when the header does not fit in 65535 bytes.
  auto padded = [&](std::size_t prefix) {
    const std::size_t total = prefix + dict.size() + 1;
    return dict.size() + (64 - total % 64) % 64 + 1;
  };
  const std::size_t prefix = padded(10) <= 65535 ? 10 : 12;
  const std::size_t len = padded(prefix);
  std::string out = "\x93NUMPY";
  out += char(prefix == 10 ? 1 : 2);
  out += char(0);
  for (std::size_t i = 0; i < prefix - 8; ++i) out += char((len >> (8 * i)) & 0xff);
  out += dict;
  out.append(len - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

template <typename T>
NpyDtype npy_resolve(NpyWriteOptions::Type t) {
  switch (t) {
    case NpyWriteOptions::Type::automatic: return npy_dtype_of<T>() == NpyDtype::int32 ? NpyDtype::int64 : npy_dtype_of<T>();
    case NpyWriteOptions::Type::float32: return NpyDtype::float32;
    case NpyWriteOptions::Type::float64: return NpyDtype::float64;
    case NpyWriteOptions::Type::int64: return NpyDtype::int64;
  }
  return NpyDtype::float64;
}

// Writes a column-major rows x cols buffer as an array of `shape` (which has rows*cols elements).
template <typename T>
void npy_write(std::ostream& out, const T* colmajor, Index rows, Index cols, const std::vector<std::uint64_t>& shape,
               const NpyWriteOptions& opt) {
  const NpyDtype dtype = npy_resolve<T>(opt.type);
  // A vector is the same bytes in either order; say C order as NumPy does for 1-D arrays.
  const bool fortran = opt.fortran_order && shape.size() >= 2;
  out << npy_header_bytes(dtype, opt.byte_order, fortran, shape);
  const std::size_t sz = item_size(dtype);
  if (cols == 1 || rows == 1) {  // one contiguous run in either order
    std::vector<char> buf(std::size_t(rows * cols) * sz);
    npy_encode(colmajor, std::size_t(rows * cols), dtype, opt.byte_order, buf.data());
    out.write(buf.data(), std::streamsize(buf.size()));
  } else if (fortran) {
    std::vector<char> buf(std::size_t(rows) * sz);
    for (Index j = 0; j < cols; ++j) {
      npy_encode(colmajor + j * rows, std::size_t(rows), dtype, opt.byte_order, buf.data());
      out.write(buf.data(), std::streamsize(buf.size()));
    }
  } else {
    std::vector<T> row(static_cast<std::size_t>(cols));
    std::vector<char> buf(std::size_t(cols) * sz);
    for (Index i = 0; i < rows; ++i) {
      for (Index j = 0; j < cols; ++j) row[std::size_t(j)] = colmajor[j * rows + i];
      npy_encode(row.data(), std::size_t(cols), dtype, opt.byte_order, buf.data());
      out.write(buf.data(), std::streamsize(buf.size()));
    }
  }
}

// Writes through a temporary sibling file and renames it over `path`, so that `path` is either the
// old file or the complete new one.
template <typename Fn>
void npy_atomic_write(const std::string& path, Fn&& write) {
  const std::string tmp = path + ".rcpu-part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) npy_fail(path, "cannot open '" + tmp + "' for writing");
    write(out);
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      npy_fail(path, "write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    npy_fail(path, "cannot rename the temporary file into place: " + ec.message());
  }
}

}  // namespace detail

/// Writes a matrix as a 2-D array (rows, cols) to a stream.
template <typename Derived>
void write_npy(std::ostream& out, const Eigen::DenseBase<Derived>& m, const NpyWriteOptions& opt = {}) {
  using T = typename Derived::Scalar;
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value ||
                    std::is_same<T, std::int64_t>::value || std::is_same<T, std::int32_t>::value,
                "write_npy: the scalar must be float, double, int32 or int64");
  const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> a = m;
  detail::npy_write(out, a.data(), a.rows(), a.cols(), {std::uint64_t(a.rows()), std::uint64_t(a.cols())}, opt);
}

/// Writes a vector as a 1-D array to a stream.
template <typename Derived>
void write_npy_vector(std::ostream& out, const Eigen::DenseBase<Derived>& v, const NpyWriteOptions& opt = {}) {
  using T = typename Derived::Scalar;
  const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> a = v;  // 1 x n or n x 1: contiguous either way
  detail::npy_write(out, a.data(), a.size(), 1, {std::uint64_t(a.size())}, opt);
}

/// Saves a matrix as a 2-D .npy file (atomically: temporary file, then rename).
/// \throws rcpu::invalid_argument if the file cannot be written.
template <typename Derived>
void save_npy(const std::string& path, const Eigen::DenseBase<Derived>& m, const NpyWriteOptions& opt = {}) {
  detail::npy_atomic_write(path, [&](std::ostream& out) { write_npy(out, m, opt); });
}

/// Saves a vector as a 1-D .npy file (atomically).
template <typename Derived>
void save_npy_vector(const std::string& path, const Eigen::DenseBase<Derived>& v, const NpyWriteOptions& opt = {}) {
  detail::npy_atomic_write(path, [&](std::ostream& out) { write_npy_vector(out, v, opt); });
}

/// Saves indices as a 1-D int64 .npy file (atomically).
inline void save_npy_indices(const std::string& path, const std::vector<Index>& idx) {
  const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> v =
      Eigen::Map<const Eigen::Matrix<Index, Eigen::Dynamic, 1>>(idx.data(), Index(idx.size())).cast<std::int64_t>();
  save_npy_vector(path, v);
}

/// Saves one integer as a 0-D int64 .npy file (atomically).
inline void save_npy_int(const std::string& path, std::int64_t value) {
  detail::npy_atomic_write(path, [&](std::ostream& out) {
    out << detail::npy_header_bytes(NpyDtype::int64, ByteOrder::little, false, {});
    char buf[8];
    detail::npy_encode(&value, 1, NpyDtype::int64, ByteOrder::little, buf);
    out.write(buf, 8);
  });
}

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_NPY_HPP
