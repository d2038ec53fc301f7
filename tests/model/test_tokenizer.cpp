// Tests of rcpu/model/tokenizer.hpp on small hand-made vocabularies: SentencePiece merge order by score,
// byte fallback, space prefix and round trips; GPT-2's pre-tokenizer regex (expected splits produced by
// Python's `regex` module with the GPT-2 pattern), digit isolation, ranked merges; building from GGUF.
#include <string>
#include <vector>

#include <rcpu/model/tokenizer.hpp>

#include "gguf_builder.hpp"
#include "support.hpp"

using rcpu::model::PreTokenizer;
using rcpu::model::Tokenizer;
using rcpu::model::TokenizerModel;

namespace {

const std::string U = "\xE2\x96\x81";  // '▁'

// <unk> <s> </s> <0x00>..<0xFF> then a few pieces with scores.
Tokenizer tiny_spm(bool prefix = true) {
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
  std::vector<float> scores{0, 0, 0};
  std::vector<std::int32_t> types{2, 3, 3};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    scores.push_back(0);
    types.push_back(6);
  }
  const std::vector<std::pair<std::string, float>> pieces{
      {U, -1.0f},  {"a", -2.0f},       {"b", -2.0f},         {"c", -3.0f},    {"ab", -1.5f},
      {"bc", -0.5f}, {U + "a", -1.2f}, {"abc", -0.1f},       {U + "abc", -0.05f}, {"\xC3\xA9", -4.0f}};
  for (const auto& p : pieces) {
    tokens.push_back(p.first);
    scores.push_back(p.second);
    types.push_back(1);
  }
  Tokenizer t = Tokenizer::sentencepiece(tokens, scores, types, prefix);
  t.set_special_ids(1, 2, 0, true);
  return t;
}

std::vector<std::string> pieces_of(const Tokenizer& t, const std::vector<std::int32_t>& ids) {
  std::vector<std::string> out;
  for (const auto id : ids) out.push_back(t.piece(id));
  return out;
}

std::vector<std::string> split(const std::string& s) {
  const auto chars = rcpu::model::detail::utf8_chars(s);
  std::vector<std::pair<std::size_t, std::size_t>> words;
  rcpu::model::detail::gpt2_split(chars, 0, chars.size(), words);
  std::vector<std::string> out;
  for (const auto& w : words) {
    const std::size_t b = chars[w.first].begin, e = chars[w.second - 1].begin + chars[w.second - 1].len;
    out.push_back(s.substr(b, e - b));
  }
  return out;
}

// GPT-2 byte alphabet spelling of a UTF-8 string.
std::string spell(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) rcpu::model::detail::append_utf8(out, rcpu::model::detail::byte_to_codepoint()[c]);
  return out;
}

Tokenizer tiny_bpe(PreTokenizer pre) {
  std::vector<std::string> tokens{"<|endoftext|>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(spell(std::string(1, static_cast<char>(b))));
  const std::vector<std::string> merges_plain{"\xC4\xA0 t", "h e", "\xC4\xA0t he", "\xC4\xA0 1", "1 2", "\xC4\xA0 \xC4\xA0"};
  for (const auto& m : merges_plain) {
    const auto sp = m.find(' ');
    tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
  }
  std::vector<std::int32_t> types(tokens.size(), 1);
  types[0] = 3;
  return Tokenizer::byte_level_bpe(tokens, merges_plain, pre, types);
}

}  // namespace

TEST_CASE("tokenizer: SentencePiece merges the best-scoring pair first") {
  const Tokenizer t = tiny_spm();
  CHECK(t.model() == TokenizerModel::sentencepiece);
  CHECK(t.unk_id() == 0);
  // ▁ a b c: bc (-0.5) first, then abc (-0.1), then ▁abc (-0.05).
  CHECK(pieces_of(t, t.encode("abc", false)) == std::vector<std::string>{U + "abc"});
  // ▁ a b ▁ c: ▁a (-1.2) beats ab (-1.5); "▁ab" and "▁c" are not pieces.
  CHECK(pieces_of(t, t.encode("ab c", false)) == std::vector<std::string>{U + "a", "b", U, "c"});
  // BOS comes first when asked for.
  const auto ids = t.encode("abc");
  REQUIRE(ids.size() == 2);
  CHECK(ids[0] == 1);
  // Without the space prefix.
  const Tokenizer np = tiny_spm(false);
  CHECK(pieces_of(np, np.encode("abc", false)) == std::vector<std::string>{"abc"});
  CHECK(np.encode("", false).empty());
  CHECK(t.encode("", true) == std::vector<std::int32_t>{1});
}

TEST_CASE("tokenizer: SentencePiece byte fallback and round trips") {
  const Tokenizer t = tiny_spm();
  // 'x' is not a piece: byte 0x78. '€' is three bytes. 'é' is a piece.
  CHECK(pieces_of(t, t.encode("x\xE2\x82\xAC\xC3\xA9", false)) ==
        std::vector<std::string>{U, "<0x78>", "<0xE2>", "<0x82>", "<0xAC>", "\xC3\xA9"});
  // Invalid UTF-8 falls back to its bytes too.
  CHECK(pieces_of(t, t.encode("\xFF", false)) == std::vector<std::string>{U, "<0xFF>"});
  for (const std::string s : {"abc", " ab c  ", "x\xE2\x82\xAC\xC3\xA9\n\tz", "  leading", "\xFF\xFE"}) {
    INFO(s);
    CHECK(t.decode(t.encode(s)) == s);
  }
  CHECK(t.find(U + "abc") >= 0);
  CHECK(t.find("zzz") == -1);
  CHECK_THROWS_AS(t.decode({9999}), rcpu::invalid_argument);
  CHECK_THROWS_AS(t.piece(-1), rcpu::invalid_argument);
  CHECK_THROWS_AS(Tokenizer::sentencepiece({"a"}, {}), rcpu::invalid_argument);
  CHECK_THROWS_AS(Tokenizer::sentencepiece({}, {}), rcpu::invalid_argument);
  CHECK_THROWS_AS(Tokenizer().encode("a"), rcpu::invalid_argument);
}

TEST_CASE("tokenizer: GPT-2 pre-tokenizer regex matches Python's regex module") {
  using V = std::vector<std::string>;
  CHECK(split("Hello world's") == V{"Hello", " world", "'s"});
  CHECK(split("a  b") == V{"a", " ", " b"});
  CHECK(split("a\n\nb") == V{"a", "\n", "\n", "b"});
  CHECK(split("x   ") == V{"x", "   "});
  CHECK(split("3.14 ok!!") == V{"3", ".", "14", " ok", "!!"});
  CHECK(split("n\xC3\xA9 \xC3\xBC \xE4\xB8\xAD\xE6\x96\x87 \xD9\xA1\xD9\xA2") ==
        V{"n\xC3\xA9", " \xC3\xBC", " \xE4\xB8\xAD\xE6\x96\x87", " \xD9\xA1\xD9\xA2"});
  CHECK(split("'S") == V{"'", "S"});
  CHECK(split(" 's") == V{" '", "s"});
  CHECK(split("\t x") == V{"\t", " x"});
  CHECK(split("we'll they're I'VE") == V{"we", "'ll", " they", "'re", " I", "'", "VE"});
  CHECK(split("  \n  x") == V{"  \n ", " x"});
  CHECK(split("a\xC2\xA0" "b\xE3\x80\x80 c") == V{"a", "\xC2\xA0", "b", "\xE3\x80\x80", " c"});
  CHECK(split("x ,. y") == V{"x", " ,.", " y"});
}

TEST_CASE("tokenizer: byte-level BPE with ranked merges, with and without digit isolation") {
  const Tokenizer plain = tiny_bpe(PreTokenizer::gpt2);
  const Tokenizer digits = tiny_bpe(PreTokenizer::gpt2_digits);
  const std::string G = "\xC4\xA0";  // 'Ġ', the spelling of a space
  CHECK(pieces_of(plain, plain.encode(" the", false)) == std::vector<std::string>{G + "the"});
  // " 12": one word for GPT-2 (Ġ1 then no merge "Ġ1 2"), three for the digit-isolating pre-tokenizer.
  CHECK(pieces_of(plain, plain.encode(" 12", false)) == std::vector<std::string>{G + "1", "2"});
  CHECK(pieces_of(digits, digits.encode(" 12", false)) == std::vector<std::string>{G, "1", "2"});
  // "  1": plain GPT-2 gives " " + " 1"; digits first gives "  " (merged ĠĠ) + "1".
  CHECK(pieces_of(plain, plain.encode("  1", false)) == std::vector<std::string>{G, G + "1"});
  CHECK(pieces_of(digits, digits.encode("  1", false)) == std::vector<std::string>{G + G, "1"});
  CHECK_FALSE(plain.add_bos());
  for (const std::string s : {" the 12 cats\n\n  x", "\xE2\x82\xAC\xC3\xA9\xFF", "", "tab\there"}) {
    INFO(s);
    CHECK(plain.decode(plain.encode(s)) == s);
    CHECK(digits.decode(digits.encode(s)) == s);
  }
  // The control token is dropped by decode.
  CHECK(plain.decode({0, plain.find("a")}) == "a");
  CHECK_THROWS_AS(Tokenizer::byte_level_bpe({"a", "b"}, {"a c"}), rcpu::invalid_argument);
  CHECK_THROWS_AS(Tokenizer::byte_level_bpe({"a", "b", "ab"}, {"ab"}), rcpu::invalid_argument);
}

TEST_CASE("tokenizer: from_gguf reads the vocabulary and special ids") {
  rcpu_test::GgufBuilder g;
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>", U, "a", U + "a"};
  g.kv_string("tokenizer.ggml.model", "llama").kv_strings("tokenizer.ggml.tokens", tokens);
  g.kv_f32s("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -1}).kv_i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  g.kv_u32("tokenizer.ggml.bos_token_id", 1).kv_u32("tokenizer.ggml.eos_token_id", 2);
  g.kv_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  const auto bytes = g.build();
  const auto f = rcpu::io::GgufFile::from_memory(bytes.data(), bytes.size());
  const Tokenizer t = Tokenizer::from_gguf(f);
  CHECK(t.vocab_size() == 6);
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_id() == 2);
  CHECK(t.unk_id() == 0);
  CHECK(t.add_bos());  // llama default
  CHECK(t.encode("a") == std::vector<std::int32_t>{1, 5});
  // No byte tokens: an unknown character becomes <unk>.
  CHECK(t.encode("z", false) == std::vector<std::int32_t>{3, 0});

  const auto fails = [](rcpu_test::GgufBuilder b) {
    const auto bb = b.build();
    const auto ff = rcpu::io::GgufFile::from_memory(bb.data(), bb.size());
    CHECK_THROWS_AS(Tokenizer::from_gguf(ff), rcpu::invalid_argument);
  };
  rcpu_test::GgufBuilder bad = g;
  bad.kvs.erase(bad.kvs.begin() + 2);  // no scores
  fails(bad);
  rcpu_test::GgufBuilder other;
  other.kv_string("tokenizer.ggml.model", "bert").kv_strings("tokenizer.ggml.tokens", tokens);
  fails(other);
  rcpu_test::GgufBuilder pre;
  pre.kv_string("tokenizer.ggml.model", "gpt2").kv_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
  pre.kv_strings("tokenizer.ggml.merges", {"a b"}).kv_string("tokenizer.ggml.pre", "llama-bpe");
  fails(pre);
  rcpu_test::GgufBuilder wrong_type;
  wrong_type.kv_string("tokenizer.ggml.model", "llama").kv_f32s("tokenizer.ggml.tokens", {1.0f});
  fails(wrong_type);
}
