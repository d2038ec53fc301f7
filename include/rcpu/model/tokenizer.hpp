// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_TOKENIZER_HPP
#define RCPU_MODEL_TOKENIZER_HPP

/// \file tokenizer.hpp
/// Tokenizers built from a GGUF vocabulary: SentencePiece-style BPE (`tokenizer.ggml.model = llama`:
/// merges chosen by the score of the merged piece, byte fallback) and GPT-2 byte-level BPE
/// (`tokenizer.ggml.model = gpt2`: ranked merges, GPT-2's pre-tokenizer regex, optionally with every
/// digit split off first as SmolLM2 / StarCoder do).
///
/// Special tokens written in the text (e.g. "<s>") are not matched: the text is tokenized as plain text.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <queue>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../detail/utf8.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "detail/unicode_tables.hpp"

namespace rcpu {
namespace model {

/// Which segmentation algorithm a Tokenizer runs.
enum class TokenizerModel {
  sentencepiece,  ///< SentencePiece BPE: merge the adjacent pair whose union has the highest score
  byte_level_bpe  ///< GPT-2 byte-level BPE with ranked merges
};

/// How byte-level BPE splits text into words before merging.
enum class PreTokenizer {
  none,        ///< no split (SentencePiece)
  gpt2,        ///< GPT-2's regex: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  gpt2_digits  ///< every \p{N} character isolated first, then GPT-2's regex (SmolLM2, StarCoder)
};

/// llama.cpp's token types, as stored in tokenizer.ggml.token_type.
enum class TokenType : std::int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

namespace detail {

inline bool in_ranges(std::uint32_t cp, const std::uint32_t (*ranges)[2], std::size_t n) {
  // Binary search for the last range whose start is <= cp.
  std::size_t lo = 0, hi = n;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (ranges[mid][0] <= cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && cp <= ranges[lo - 1][1];
}

/// \p{L}: Unicode general category L*.
inline bool is_letter(std::uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20u) >= 'a' && (cp | 0x20u) <= 'z';
  return in_ranges(cp, unicode_letter_ranges, sizeof(unicode_letter_ranges) / sizeof(unicode_letter_ranges[0]));
}
/// \p{N}: Unicode general category N*.
inline bool is_number(std::uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(cp, unicode_number_ranges, sizeof(unicode_number_ranges) / sizeof(unicode_number_ranges[0]));
}
/// \s: the Unicode White_Space property (what the reference regex engines match with \s).
inline bool is_space(std::uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

using rcpu::detail::Utf8Char;
using rcpu::detail::utf8_chars;
using rcpu::detail::append_utf8;

/// GPT-2's pre-tokenizer regex on the characters [first, last) of `c`, written out by hand (std::regex
/// has no \p{..}). Appends the [begin, end) character ranges of the words to `out`. The alternatives are
/// tried in the regex's order at each position, as a backtracking engine does; the lookahead (?!\S) sees
/// only the characters up to `last`, because the reference applies the regex to each pre-split piece.
inline void gpt2_split(const std::vector<Utf8Char>& c, std::size_t first, std::size_t last,
                       std::vector<std::pair<std::size_t, std::size_t>>& out) {
  const auto letter = [&](std::size_t k) { return is_letter(c[k].cp); };
  const auto number = [&](std::size_t k) { return is_number(c[k].cp); };
  const auto space = [&](std::size_t k) { return is_space(c[k].cp); };
  const auto other = [&](std::size_t k) { return !space(k) && !letter(k) && !number(k); };
  std::size_t i = first;
  while (i < last) {
    const std::uint32_t ch = c[i].cp;
    // 's|'t|'re|'ve|'m|'ll|'d  (case-sensitive, as in GPT-2)
    if (ch == '\'' && i + 1 < last) {
      const std::uint32_t a = c[i + 1].cp;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        out.emplace_back(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < last) {
        const std::uint32_t b = c[i + 2].cp;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          out.emplace_back(i, i + 3);
          i += 3;
          continue;
        }
      }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
    const std::size_t s = (ch == ' ' && i + 1 < last) ? i + 1 : i;
    bool matched = false;
    for (int cls = 0; cls < 3 && !matched; ++cls) {
      const auto in_class = [&](std::size_t k) { return cls == 0 ? letter(k) : cls == 1 ? number(k) : other(k); };
      std::size_t start = s;
      if (!in_class(start)) {
        if (start == i) continue;
        start = i;  // the optional space not taken: the run must start at i itself
        if (!in_class(start)) continue;
      }
      std::size_t e = start + 1;
      while (e < last && in_class(e)) ++e;
      out.emplace_back(i, e);
      i = e;
      matched = true;
    }
    if (matched) continue;
    // \s+(?!\S) then \s+: a whitespace run, less its last character when a non-space follows.
    std::size_t e = i;
    while (e < last && space(e)) ++e;
    if (e == i) {  // cannot happen: every character is a letter, number, other or space
      out.emplace_back(i, i + 1);
      ++i;
      continue;
    }
    if (e < last && e - i >= 2) --e;
    out.emplace_back(i, e);
    i = e;
  }
}

/// GPT-2's reversible map from bytes to printable code points.
inline const std::uint32_t* byte_to_codepoint() {
  static const auto table = [] {
    std::vector<std::uint32_t> t(256);
    std::uint32_t next = 256;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table.data();
}

}  // namespace detail

/// A tokenizer: encode text to ids and decode ids to text. Cheap to copy (the vocabulary is shared).
class Tokenizer {
 public:
  Tokenizer() = default;

  /// SentencePiece-style BPE over `tokens` with `scores` (one per token).
  /// \param types  llama.cpp token types (one per token) or empty: every token normal, except that
  ///               pieces "<0xXX>" are byte tokens
  /// \param add_space_prefix  prepend a space to the text, as SentencePiece's add_dummy_prefix does
  static Tokenizer sentencepiece(std::vector<std::string> tokens, std::vector<float> scores,
                                 std::vector<std::int32_t> types = {}, bool add_space_prefix = true) {
    if (scores.size() != tokens.size())
      throw invalid_argument("Tokenizer::sentencepiece: " + std::to_string(tokens.size()) + " tokens but " +
                             std::to_string(scores.size()) + " scores");
    auto v = make_vocab(std::move(tokens), std::move(types), "Tokenizer::sentencepiece");
    v->model = TokenizerModel::sentencepiece;
    v->pre = PreTokenizer::none;
    v->scores = std::move(scores);
    v->add_space_prefix = add_space_prefix;
    for (int b = 0; b < 256; ++b) {
      static const char* hex = "0123456789ABCDEF";
      const std::string piece = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      const auto it = v->index.find(piece);
      v->byte_token[static_cast<std::size_t>(b)] = it == v->index.end() ? -1 : it->second;
    }
    Tokenizer t;
    t.m_unk = first_unknown(*v);
    t.m_vocab = std::move(v);
    return t;
  }

  /// Byte-level BPE over `tokens` (spelled in GPT-2's byte alphabet) with `merges` ("left right", best first).
  static Tokenizer byte_level_bpe(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                                  PreTokenizer pre = PreTokenizer::gpt2, std::vector<std::int32_t> types = {}) {
    auto v = make_vocab(std::move(tokens), std::move(types), "Tokenizer::byte_level_bpe");
    v->model = TokenizerModel::byte_level_bpe;
    v->pre = pre == PreTokenizer::none ? PreTokenizer::gpt2 : pre;
    const std::uint32_t* b2c = detail::byte_to_codepoint();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      detail::append_utf8(s, b2c[b]);
      const auto it = v->index.find(s);
      v->byte_token[static_cast<std::size_t>(b)] = it == v->index.end() ? -1 : it->second;
      v->codepoint_to_byte.emplace(b2c[b], static_cast<unsigned char>(b));
    }
    v->merges.reserve(merges.size());
    for (std::size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const std::size_t sp = m.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size() || m.find(' ', sp + 1) != std::string::npos)
        throw invalid_argument("Tokenizer::byte_level_bpe: merge " + std::to_string(r) + " '" + m +
                               "' is not two pieces separated by one space");
      const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
      const std::string merged = std::string(left) + std::string(right);
      const auto il = v->index.find(left), ir = v->index.find(right), im = v->index.find(merged);
      if (il == v->index.end() || ir == v->index.end() || im == v->index.end())
        throw invalid_argument("Tokenizer::byte_level_bpe: merge " + std::to_string(r) + " '" + m +
                               "' uses or makes a piece that is not in the vocabulary");
      // Keep the best rank when a file repeats a merge.
      v->merges.emplace(pair_key(il->second, ir->second),
                        Merge{static_cast<std::int32_t>(r), im->second});
    }
    Tokenizer t;
    t.m_unk = first_unknown(*v);
    t.m_vocab = std::move(v);
    return t;
  }

  /// The tokenizer a GGUF file describes (tokenizer.ggml.*). Special token ids outside the
  /// vocabulary (e.g. 0xFFFFFFFF for "none") are ignored.
  /// \throws rcpu::invalid_argument for a missing vocabulary, inconsistent arrays, an unknown model or
  ///         an unsupported pre-tokenizer.
  static Tokenizer from_gguf(const io::GgufFile& file) {
    const std::string model = file.get_string("tokenizer.ggml.model", "");
    const io::GgufValue* tok = file.find("tokenizer.ggml.tokens");
    if (tok == nullptr) throw invalid_argument("Tokenizer::from_gguf: " + file.source() + " has no tokenizer.ggml.tokens");
    std::vector<std::string> tokens = wrap(file, "tokenizer.ggml.tokens", [&] { return tok->strings(); });
    std::vector<std::int32_t> types;
    if (const io::GgufValue* tt = file.find("tokenizer.ggml.token_type")) {
      const auto raw = wrap(file, "tokenizer.ggml.token_type", [&] { return tt->ints(); });
      for (const auto x : raw) types.push_back(static_cast<std::int32_t>(std::clamp<std::int64_t>(x, -1, 7)));
    }
    Tokenizer t;
    bool default_add_bos = false;
    if (model == "llama") {
      const io::GgufValue* sc = file.find("tokenizer.ggml.scores");
      if (sc == nullptr) throw invalid_argument("Tokenizer::from_gguf: " + file.source() + " has no tokenizer.ggml.scores");
      std::vector<float> scores = wrap(file, "tokenizer.ggml.scores", [&] { return sc->floats(); });
      const bool prefix = file.get_bool("tokenizer.ggml.add_space_prefix", true);
      t = sentencepiece(std::move(tokens), std::move(scores), std::move(types), prefix);
      default_add_bos = true;
    } else if (model == "gpt2") {
      const io::GgufValue* mg = file.find("tokenizer.ggml.merges");
      if (mg == nullptr) throw invalid_argument("Tokenizer::from_gguf: " + file.source() + " has no tokenizer.ggml.merges");
      const std::vector<std::string> merges = wrap(file, "tokenizer.ggml.merges", [&] { return mg->strings(); });
      const std::string pre = file.get_string("tokenizer.ggml.pre", "default");
      PreTokenizer p;
      if (pre == "default" || pre == "gpt2" || pre == "gpt-2")
        p = PreTokenizer::gpt2;
      else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell")
        p = PreTokenizer::gpt2_digits;
      else
        throw invalid_argument("Tokenizer::from_gguf: pre-tokenizer '" + pre +
                               "' is not supported (supported: default, gpt2, smollm, starcoder, refact, codeshell)");
      t = byte_level_bpe(std::move(tokens), merges, p, std::move(types));
    } else {
      throw invalid_argument("Tokenizer::from_gguf: tokenizer.ggml.model = '" + model +
                             "' is not supported (supported: llama, gpt2)");
    }
    const auto special = [&](const char* key) -> std::int32_t {
      const std::int64_t id = file.get_int(key, -1);
      return id >= 0 && id < t.vocab_size() ? static_cast<std::int32_t>(id) : -1;
    };
    t.m_bos = special("tokenizer.ggml.bos_token_id");
    t.m_eos = special("tokenizer.ggml.eos_token_id");
    if (file.has("tokenizer.ggml.unknown_token_id")) t.m_unk = special("tokenizer.ggml.unknown_token_id");
    t.m_add_bos = file.get_bool("tokenizer.ggml.add_bos_token", default_add_bos) && t.m_bos >= 0;
    return t;
  }

  TokenizerModel model() const { return vocab().model; }
  PreTokenizer pre_tokenizer() const { return vocab().pre; }
  Index vocab_size() const { return m_vocab ? static_cast<Index>(m_vocab->tokens.size()) : 0; }
  std::int32_t bos_id() const { return m_bos; }
  std::int32_t eos_id() const { return m_eos; }
  std::int32_t unk_id() const { return m_unk; }
  /// Whether encode(text) starts with the BOS token.
  bool add_bos() const { return m_add_bos; }
  void set_special_ids(std::int32_t bos, std::int32_t eos, std::int32_t unk, bool add_bos) {
    const auto check = [&](std::int32_t id, const char* name) {
      if (id < -1 || id >= vocab_size())
        throw invalid_argument(std::string("Tokenizer::set_special_ids: ") + name + " = " + std::to_string(id) +
                               " is outside [-1, " + std::to_string(vocab_size()) + ")");
    };
    check(bos, "bos");
    check(eos, "eos");
    check(unk, "unk");
    m_bos = bos;
    m_eos = eos;
    m_unk = unk;
    m_add_bos = add_bos && bos >= 0;
  }

  /// The vocabulary entry of an id.
  const std::string& piece(std::int32_t id) const {
    check_id(id, "piece");
    return vocab().tokens[static_cast<std::size_t>(id)];
  }
  /// The id of a vocabulary entry, or -1.
  std::int32_t find(std::string_view piece) const {
    const auto it = vocab().index.find(piece);
    return it == vocab().index.end() ? -1 : it->second;
  }

  /// Token ids of `text` (UTF-8), with BOS first when add_bos().
  std::vector<std::int32_t> encode(std::string_view text) const { return encode(text, m_add_bos); }
  std::vector<std::int32_t> encode(std::string_view text, bool with_bos) const {
    const Vocab& v = vocab();
    std::vector<std::int32_t> ids;
    if (with_bos && m_bos >= 0) ids.push_back(m_bos);
    if (text.empty()) return ids;
    if (v.model == TokenizerModel::sentencepiece)
      encode_sentencepiece(v, text, ids);
    else
      encode_byte_level(v, text, ids);
    return ids;
  }

  /// Text of `ids`: control tokens are dropped, byte tokens become bytes, and the space that
  /// SentencePiece's prefix added at the start is removed, so that decode(encode(t)) == t.
  std::string decode(const std::vector<std::int32_t>& ids) const {
    const Vocab& v = vocab();
    std::string out;
    for (const std::int32_t id : ids) {
      check_id(id, "decode");
      const auto k = static_cast<std::size_t>(id);
      if (v.types[k] == static_cast<std::int32_t>(TokenType::control)) continue;
      const std::string& p = v.tokens[k];
      if (v.model == TokenizerModel::sentencepiece) {
        if (v.types[k] == static_cast<std::int32_t>(TokenType::byte) && is_byte_piece(p)) {
          out += static_cast<char>(hex_value(p[3]) * 16 + hex_value(p[4]));
          continue;
        }
        for (std::size_t i = 0; i < p.size(); ++i) {
          if (p.compare(i, 3, "\xE2\x96\x81") == 0) {  // U+2581 '▁'
            out += ' ';
            i += 2;
          } else {
            out += p[i];
          }
        }
      } else {
        for (const detail::Utf8Char& ch : detail::utf8_chars(p)) {
          const auto it = v.codepoint_to_byte.find(ch.cp);
          if (it != v.codepoint_to_byte.end())
            out += static_cast<char>(it->second);
          else
            out.append(p, ch.begin, ch.len);
        }
      }
    }
    if (v.model == TokenizerModel::sentencepiece && v.add_space_prefix && !out.empty() && out[0] == ' ')
      out.erase(0, 1);
    return out;
  }

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t id;
  };
  struct Vocab {
    TokenizerModel model = TokenizerModel::sentencepiece;
    PreTokenizer pre = PreTokenizer::none;
    std::vector<std::string> tokens;
    std::vector<std::int32_t> types;
    std::vector<float> scores;
    // Keys view into `tokens`, which is never modified after construction (and Vocab is never copied).
    std::unordered_map<std::string_view, std::int32_t> index;
    std::unordered_map<std::uint64_t, Merge> merges;
    std::unordered_map<std::uint32_t, unsigned char> codepoint_to_byte;
    std::int32_t byte_token[256];
    bool add_space_prefix = true;
  };

  // "<0xHH>": SentencePiece's byte-fallback pieces.
  static bool is_byte_piece(const std::string& p) {
    return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
           std::isxdigit(static_cast<unsigned char>(p[3])) && std::isxdigit(static_cast<unsigned char>(p[4]));
  }
  static int hex_value(char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
  }

  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32 | static_cast<std::uint32_t>(b);
  }

  template <typename F>
  static auto wrap(const io::GgufFile& file, const char* key, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const invalid_argument& e) {
      throw invalid_argument("Tokenizer::from_gguf: " + file.source() + ": " + key + ": " + e.what());
    }
  }

  static std::shared_ptr<Vocab> make_vocab(std::vector<std::string> tokens, std::vector<std::int32_t> types,
                                           const char* who) {
    if (tokens.empty()) throw invalid_argument(std::string(who) + ": the vocabulary is empty");
    if (tokens.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
      throw invalid_argument(std::string(who) + ": the vocabulary is too large");
    if (!types.empty() && types.size() != tokens.size())
      throw invalid_argument(std::string(who) + ": " + std::to_string(tokens.size()) + " tokens but " +
                             std::to_string(types.size()) + " token types");
    auto v = std::make_shared<Vocab>();
    v->tokens = std::move(tokens);
    if (types.empty()) {
      types.assign(v->tokens.size(), static_cast<std::int32_t>(TokenType::normal));
      for (std::size_t i = 0; i < v->tokens.size(); ++i) {
        const std::string& p = v->tokens[i];
        if (is_byte_piece(p)) types[i] = static_cast<std::int32_t>(TokenType::byte);
      }
    }
    v->types = std::move(types);
    v->index.reserve(v->tokens.size());
    for (std::size_t i = 0; i < v->tokens.size(); ++i)
      v->index.emplace(std::string_view(v->tokens[i]), static_cast<std::int32_t>(i));  // first one wins
    std::fill(std::begin(v->byte_token), std::end(v->byte_token), -1);
    return v;
  }

  // The first token typed "unknown", or -1.
  static std::int32_t first_unknown(const Vocab& v) {
    for (std::size_t i = 0; i < v.types.size(); ++i)
      if (v.types[i] == static_cast<std::int32_t>(TokenType::unknown)) return static_cast<std::int32_t>(i);
    return -1;
  }

  const Vocab& vocab() const {
    if (!m_vocab) throw invalid_argument("Tokenizer: used before it was built (default-constructed)");
    return *m_vocab;
  }
  void check_id(std::int32_t id, const char* what) const {
    if (id < 0 || id >= vocab_size())
      throw invalid_argument(std::string("Tokenizer::") + what + ": id " + std::to_string(id) + " is outside [0, " +
                             std::to_string(vocab_size()) + ")");
  }

  // SentencePiece BPE: start from characters, repeatedly merge the adjacent pair whose concatenation is
  // a vocabulary piece with the highest score (leftmost on ties); a final piece that is not in the
  // vocabulary falls back to its bytes.
  void encode_sentencepiece(const Vocab& v, std::string_view text, std::vector<std::int32_t>& ids) const {
    std::string s;
    s.reserve(text.size() + 3 + text.size() / 4);
    if (v.add_space_prefix) s += "\xE2\x96\x81";
    for (const char ch : text) {
      if (ch == ' ')
        s += "\xE2\x96\x81";
      else
        s += ch;
    }
    const std::vector<detail::Utf8Char> chars = detail::utf8_chars(s);
    const std::size_t n = chars.size();
    std::vector<std::size_t> start(n), len(n);
    std::vector<std::ptrdiff_t> prev(n), next(n);
    for (std::size_t i = 0; i < n; ++i) {
      start[i] = chars[i].begin;
      len[i] = chars[i].len;
      prev[i] = static_cast<std::ptrdiff_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<std::ptrdiff_t>(i + 1) : -1;
    }
    struct Bigram {
      float score;
      std::size_t left, right, size;
    };
    const auto worse = [](const Bigram& a, const Bigram& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    const auto try_add = [&](std::ptrdiff_t l, std::ptrdiff_t r) {
      if (l < 0 || r < 0) return;
      const auto L = static_cast<std::size_t>(l), R = static_cast<std::size_t>(r);
      const std::string_view piece(s.data() + start[L], len[L] + len[R]);
      const auto it = v.index.find(piece);
      if (it == v.index.end()) return;
      queue.push({v.scores[static_cast<std::size_t>(it->second)], L, R, piece.size()});
    };
    for (std::size_t i = 1; i < n; ++i) try_add(static_cast<std::ptrdiff_t>(i - 1), static_cast<std::ptrdiff_t>(i));
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      // Stale entry: one side was merged away or grew since it was queued.
      if (len[b.left] == 0 || len[b.right] == 0 || len[b.left] + len[b.right] != b.size ||
          next[b.left] != static_cast<std::ptrdiff_t>(b.right))
        continue;
      len[b.left] += len[b.right];
      len[b.right] = 0;
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[static_cast<std::size_t>(next[b.right])] = static_cast<std::ptrdiff_t>(b.left);
      try_add(prev[b.left], static_cast<std::ptrdiff_t>(b.left));
      try_add(static_cast<std::ptrdiff_t>(b.left), next[b.left]);
    }
    for (std::ptrdiff_t i = n > 0 ? 0 : -1; i >= 0; i = next[static_cast<std::size_t>(i)]) {
      const auto k = static_cast<std::size_t>(i);
      const std::string_view piece(s.data() + start[k], len[k]);
      const auto it = v.index.find(piece);
      if (it != v.index.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (const char byte : piece) {
        const std::int32_t id = v.byte_token[static_cast<unsigned char>(byte)];
        if (id >= 0)
          ids.push_back(id);
        else if (m_unk >= 0)
          ids.push_back(m_unk);
        else
          throw invalid_argument("Tokenizer::encode: byte " + std::to_string(static_cast<unsigned char>(byte)) +
                                 " has no byte token and there is no unknown token");
      }
    }
  }

  // Byte-level BPE: pre-split into words, map each word's bytes to single-byte tokens, and merge the
  // lowest-ranked adjacent pair (leftmost on ties) until no pair has a merge. Words repeat a lot, so
  // their ids are cached for the duration of one call.
  void encode_byte_level(const Vocab& v, std::string_view text, std::vector<std::int32_t>& ids) const {
    const std::vector<detail::Utf8Char> chars = detail::utf8_chars(text);
    std::vector<std::pair<std::size_t, std::size_t>> words;
    words.reserve(chars.size() / 3 + 1);
    if (v.pre == PreTokenizer::gpt2_digits) {
      std::size_t a = 0;
      for (std::size_t i = 0; i < chars.size(); ++i) {
        if (!detail::is_number(chars[i].cp)) continue;
        detail::gpt2_split(chars, a, i, words);
        words.emplace_back(i, i + 1);
        a = i + 1;
      }
      detail::gpt2_split(chars, a, chars.size(), words);
    } else {
      detail::gpt2_split(chars, 0, chars.size(), words);
    }
    std::unordered_map<std::string_view, std::vector<std::int32_t>> cache;
    std::vector<std::int32_t> sym;
    for (const auto& w : words) {
      const std::size_t b0 = chars[w.first].begin;
      const std::size_t b1 = chars[w.second - 1].begin + chars[w.second - 1].len;
      const std::string_view word = text.substr(b0, b1 - b0);
      const auto hit = cache.find(word);
      if (hit != cache.end()) {
        ids.insert(ids.end(), hit->second.begin(), hit->second.end());
        continue;
      }
      sym.clear();
      for (const char byte : word) {
        const std::int32_t id = v.byte_token[static_cast<unsigned char>(byte)];
        if (id < 0 && m_unk < 0)
          throw invalid_argument("Tokenizer::encode: byte " + std::to_string(static_cast<unsigned char>(byte)) +
                                 " is not in the byte-level vocabulary and there is no unknown token");
        sym.push_back(id < 0 ? m_unk : id);
      }
      while (sym.size() > 1) {
        std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), best_id = -1;
        std::size_t best = 0;
        for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
          const auto it = v.merges.find(pair_key(sym[i], sym[i + 1]));
          if (it != v.merges.end() && it->second.rank < best_rank) {
            best_rank = it->second.rank;
            best_id = it->second.id;
            best = i;
          }
        }
        if (best_id < 0) break;
        sym[best] = best_id;
        sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      }
      ids.insert(ids.end(), sym.begin(), sym.end());
      cache.emplace(word, sym);
    }
  }

  std::shared_ptr<const Vocab> m_vocab;
  std::int32_t m_bos = -1;
  std::int32_t m_eos = -1;
  std::int32_t m_unk = -1;
  bool m_add_bos = false;
};

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_TOKENIZER_HPP
