// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_JSON_HPP
#define RCPU_IO_JSON_HPP

/// \file json.hpp
/// A small strict JSON reader (RFC 8259) for the data files rcpu reads, e.g. the zero-shot tasks as
/// JSON Lines (tools/zeroshot/convert.py). Values: null, bool, number (double, read independently of the
/// C locale; a value beyond a double's range is an error), string (UTF-8; `\u`
/// escapes and surrogate pairs decoded), array, object (members in file order). Anything else — a
/// trailing comma, a lone surrogate, invalid UTF-8, a control character in a string, nesting deeper than
/// 256 — throws rcpu::invalid_argument naming the byte offset. rcpu writes its own JSON by hand; this
/// is the reading side only.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../detail/utf8.hpp"
#include "../error.hpp"

namespace rcpu {
namespace io {

/// One JSON value.
class Json {
 public:
  enum class Type { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  static Json from_bool(bool b) { Json j; j.m_type = Type::boolean; j.m_bool = b; return j; }
  static Json from_number(double x) { Json j; j.m_type = Type::number; j.m_number = x; return j; }
  static Json from_string(std::string s) { Json j; j.m_type = Type::string; j.m_string = std::move(s); return j; }
  static Json from_array(Array a) { Json j; j.m_type = Type::array; j.m_array = std::move(a); return j; }
  static Json from_object(Object o) { Json j; j.m_type = Type::object; j.m_object = std::move(o); return j; }

  Type type() const { return m_type; }
  bool is_null() const { return m_type == Type::null; }
  bool is_bool() const { return m_type == Type::boolean; }
  bool is_number() const { return m_type == Type::number; }
  bool is_string() const { return m_type == Type::string; }
  bool is_array() const { return m_type == Type::array; }
  bool is_object() const { return m_type == Type::object; }

  /// The value as that type. \throws rcpu::invalid_argument when it is another type.
  bool as_bool() const { expect(Type::boolean); return m_bool; }
  double as_number() const { expect(Type::number); return m_number; }
  /// A number that is a whole number in [-2^53, 2^53]. \throws rcpu::invalid_argument otherwise.
  std::int64_t as_int() const {
    expect(Type::number);
    if (!(std::floor(m_number) == m_number && std::fabs(m_number) <= 9007199254740992.0))
      throw invalid_argument("json: " + std::to_string(m_number) + " is not a whole number");
    return static_cast<std::int64_t>(m_number);
  }
  const std::string& as_string() const { expect(Type::string); return m_string; }
  const Array& as_array() const { expect(Type::array); return m_array; }
  const Object& as_object() const { expect(Type::object); return m_object; }

  /// Member `key` of an object, or null when absent (first match). \throws if not an object.
  const Json* find(std::string_view key) const {
    for (const auto& kv : as_object())
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  /// Member `key` of an object. \throws rcpu::invalid_argument naming the key when absent.
  const Json& at(std::string_view key) const {
    const Json* j = find(key);
    if (j == nullptr) throw invalid_argument("json: no member \"" + std::string(key) + "\"");
    return *j;
  }
  /// Element `i` of an array. \throws rcpu::invalid_argument when out of range.
  const Json& at(std::size_t i) const {
    const Array& a = as_array();
    if (i >= a.size())
      throw invalid_argument("json: index " + std::to_string(i) + " outside an array of " + std::to_string(a.size()));
    return a[i];
  }
  std::size_t size() const { return is_array() ? m_array.size() : as_object().size(); }

  static const char* type_name(Type t) {
    switch (t) {
      case Type::null: return "null";
      case Type::boolean: return "bool";
      case Type::number: return "number";
      case Type::string: return "string";
      case Type::array: return "array";
      case Type::object: return "object";
    }
    return "unknown";
  }

 private:
  void expect(Type t) const {
    if (m_type != t)
      throw invalid_argument(std::string("json: expected ") + type_name(t) + ", found " + type_name(m_type));
  }

  Type m_type = Type::null;
  bool m_bool = false;
  double m_number = 0.0;
  std::string m_string;
  Array m_array;
  Object m_object;
};

namespace detail {

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : m_s(text) {}

  Json parse_document() {
    skip_space();
    Json v = value(0);
    skip_space();
    if (m_i != m_s.size()) error("unexpected text after the value");
    return v;
  }

 private:
  static constexpr int max_depth = 256;

  [[noreturn]] void error(const std::string& what) const {
    throw invalid_argument("json: " + what + " at byte " + std::to_string(m_i));
  }
  bool at_end() const { return m_i >= m_s.size(); }
  char peek() const { return at_end() ? '\0' : m_s[m_i]; }
  void skip_space() {
    while (!at_end() && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n' || m_s[m_i] == '\r')) ++m_i;
  }
  void literal(std::string_view word) {
    if (m_s.substr(m_i, word.size()) != word) error("invalid literal");
    m_i += word.size();
  }

  Json value(int depth) {
    if (depth >= max_depth) error("nesting deeper than " + std::to_string(max_depth));
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return Json::from_string(string());
      case 't': literal("true"); return Json::from_bool(true);
      case 'f': literal("false"); return Json::from_bool(false);
      case 'n': literal("null"); return Json();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return Json::from_number(number());
        error(at_end() ? "unexpected end of text" : "unexpected character");
    }
  }

  Json object(int depth) {
    ++m_i;  // '{'
    Json::Object members;
    skip_space();
    if (peek() == '}') { ++m_i; return Json::from_object(std::move(members)); }
    for (;;) {
      skip_space();
      if (peek() != '"') error("expected a member name");
      std::string key = string();
      skip_space();
      if (peek() != ':') error("expected ':'");
      ++m_i;
      skip_space();
      members.emplace_back(std::move(key), value(depth + 1));
      skip_space();
      if (peek() == ',') { ++m_i; continue; }
      if (peek() == '}') { ++m_i; return Json::from_object(std::move(members)); }
      error("expected ',' or '}'");
    }
  }

  Json array(int depth) {
    ++m_i;  // '['
    Json::Array items;
    skip_space();
    if (peek() == ']') { ++m_i; return Json::from_array(std::move(items)); }
    for (;;) {
      skip_space();
      items.push_back(value(depth + 1));
      skip_space();
      if (peek() == ',') { ++m_i; continue; }
      if (peek() == ']') { ++m_i; return Json::from_array(std::move(items)); }
      error("expected ',' or ']'");
    }
  }

  double number() {
    const std::size_t start = m_i;
    if (peek() == '-') ++m_i;
    if (peek() == '0') {
      ++m_i;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++m_i;
    } else {
      error("invalid number");
    }
    if (peek() == '.') {
      ++m_i;
      if (!(peek() >= '0' && peek() <= '9')) error("invalid number");
      while (peek() >= '0' && peek() <= '9') ++m_i;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++m_i;
      if (peek() == '+' || peek() == '-') ++m_i;
      if (!(peek() >= '0' && peek() <= '9')) error("invalid number");
      while (peek() >= '0' && peek() <= '9') ++m_i;
    }
    // from_chars, not strtod: independent of the C locale (a comma-decimal LC_NUMERIC in the host
    // program). A number too large for a double is an error; one too small rounds to zero.
    double v = 0.0;
    const char* first = m_s.data() + start;
    const auto [end, ec] = std::from_chars(first, m_s.data() + m_i, v);
    if (ec == std::errc::result_out_of_range) {
      // Underflow rounds to (signed) zero; overflow is refused.
      const std::string_view digits = m_s.substr(start, m_i - start);
      const std::size_t e = digits.find_first_of("eE");
      if (e != std::string_view::npos && digits.substr(e + 1, 1) == "-") return digits.front() == '-' ? -0.0 : 0.0;
      m_i = start;
      error("number out of the range of a double");
    }
    if (ec != std::errc() || end != m_s.data() + m_i) {
      m_i = start;
      error("invalid number");
    }
    return v;
  }

  unsigned hex4() {
    if (m_i + 4 > m_s.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = m_s[m_i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else error("invalid \\u escape");
    }
    return v;
  }

  // Copies one UTF-8 character starting at m_i; invalid UTF-8 (overlong, surrogate, > U+10FFFF,
  // truncated) is an error, not a replacement character.
  void utf8_char(std::string& out) {
    const std::string_view rest = m_s.substr(m_i, 4);
    const rcpu::detail::Utf8Char c = rcpu::detail::utf8_chars(rest).front();
    if (c.cp == 0xFFFD && c.len == 1) error("invalid UTF-8");
    out.append(m_s.data() + m_i, c.len);
    m_i += c.len;
  }

  std::string string() {
    ++m_i;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) error("unterminated string");
      const char c = m_s[m_i];
      if (c == '"') { ++m_i; return out; }
      if (static_cast<unsigned char>(c) < 0x20) error("control character in a string");
      if (static_cast<unsigned char>(c) >= 0x80) { utf8_char(out); continue; }
      if (c != '\\') { out += c; ++m_i; continue; }
      ++m_i;
      if (at_end()) error("unterminated string");
      const char e = m_s[m_i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) error("lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (m_s.substr(m_i, 2) != "\\u") error("lone high surrogate");
            m_i += 2;
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("lone high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          rcpu::detail::append_utf8(out, cp);
          break;
        }
        default: --m_i; error("invalid escape");
      }
    }
  }

  std::string_view m_s;
  std::size_t m_i = 0;
};

}  // namespace detail

/// Parses one JSON document (surrounding white space allowed). \throws rcpu::invalid_argument.
inline Json parse_json(std::string_view text) { return detail::JsonParser(text).parse_document(); }

/// Calls `f(value, line_number)` for every non-blank line of a JSON Lines file (line numbers from 1).
/// \throws rcpu::invalid_argument naming the file and line for a line that is not JSON, or when the
///         file cannot be read.
inline void for_each_json_line(const std::string& path, const std::function<void(const Json&, std::size_t)>& f) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw invalid_argument("json: cannot open '" + path + "'");
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Json j;
    try {
      j = parse_json(line);
    } catch (const invalid_argument& e) {
      throw invalid_argument(path + ":" + std::to_string(n) + ": " + e.message());
    }
    f(j, n);
  }
  if (in.bad()) throw invalid_argument("json: error reading '" + path + "'");
}

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_JSON_HPP
