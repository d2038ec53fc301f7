// Writes the GGUF fuzz seed corpus (fuzz/corpus/gguf) with the tests' byte-level builder: small valid files
// that reach every part of the reader, the tokenizers and the model loader, and a few broken ones.
//   build-model/tests/model/fuzz_gguf_make_corpus fuzz/corpus/gguf
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "gguf_builder.hpp"

using rcpu_test::Bytes;
using rcpu_test::GgufBuilder;

namespace {

std::vector<int> pattern(int n, int mod) {
  std::vector<int> q;
  for (int j = 0; j < n; ++j) q.push_back((j * 5 + 1) % mod);
  return q;
}

// A one-layer LLaMA with d = 8, 2 query heads / 1 KV head, ffn 8, and the given vocabulary size.
void tiny_llama(GgufBuilder& g, int vocab, bool tied) {
  g.kv_string("general.architecture", "llama").kv_u32("llama.block_count", 1).kv_u32("llama.embedding_length", 8);
  g.kv_u32("llama.attention.head_count", 2).kv_u32("llama.attention.head_count_kv", 1);
  g.kv_u32("llama.feed_forward_length", 8).kv_u32("llama.rope.dimension_count", 4);
  g.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  int seed = 1;
  const auto mat = [&](const std::string& name, int rows, int cols) {
    Eigen::MatrixXf m(rows, cols);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) m(i, j) = static_cast<float>(((seed = seed * 1103515245 + 12345) >> 16) % 200) / 400.0f - 0.25f;
    g.matrix_f32(name, m);
  };
  mat("token_embd.weight", vocab, 8);
  g.vector_f32("output_norm.weight", Eigen::VectorXf::Ones(8));
  if (!tied) mat("output.weight", vocab, 8);
  g.vector_f32("blk.0.attn_norm.weight", Eigen::VectorXf::Ones(8)).vector_f32("blk.0.ffn_norm.weight", Eigen::VectorXf::Ones(8));
  mat("blk.0.attn_q.weight", 8, 8);
  mat("blk.0.attn_k.weight", 4, 8);
  mat("blk.0.attn_v.weight", 4, 8);
  mat("blk.0.attn_output.weight", 8, 8);
  mat("blk.0.ffn_gate.weight", 8, 8);
  mat("blk.0.ffn_up.weight", 8, 8);
  mat("blk.0.ffn_down.weight", 8, 8);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_gguf_make_corpus OUT_DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> seeds;

  GgufBuilder minimal;
  seeds.emplace_back("minimal", minimal.build());

  GgufBuilder meta;
  meta.version = 2;
  meta.kv_u8("u8", 1).kv_i8("i8", -1).kv_u16("u16", 2).kv_i16("i16", -2).kv_u32("u32", 3).kv_i32("i32", -3);
  meta.kv_f32("f32", 0.5f).kv_bool("b", true).kv_string("s", "text").kv_u64("u64", 4).kv_i64("i64", -4);
  meta.kv_f64("f64", 0.25).kv_strings("ss", {"x", "y"}).kv_f32s("fs", {1.0f}).kv_i32s("is", {1, 2});
  meta.kv_raw("nested", 9, Bytes().u32(9).u64(1).u32(0).u64(2).u8(1).u8(2).data);
  seeds.emplace_back("metadata_v2", meta.build());

  GgufBuilder tensors;
  tensors.kv_u32("general.alignment", 64);
  tensors.alignment = 64;
  Bytes f16, bf16;
  for (float v : {1.0f, -2.0f, 0.5f, 65504.0f}) f16.f16(v);
  for (std::uint16_t v : {0x3F80, 0xC040}) bf16.u16(v);
  tensors.tensor_f32("f32", {2, 2}, {1, 2, 3, 4});
  tensors.tensor("f16", 1, {4}, f16.data).tensor("bf16", 30, {2}, bf16.data);
  tensors.tensor("f64", 28, {1}, Bytes().f64(1.5).data).tensor("i8", 24, {2}, Bytes().u8(1).u8(0xFF).data);
  tensors.tensor("i16", 25, {1}, Bytes().u16(7).data).tensor("i32", 26, {1}, Bytes().u32(9).data);
  tensors.tensor("q4_0", 2, {32}, rcpu_test::q4_0_block(0.5f, pattern(32, 16)));
  tensors.tensor("q4_1", 3, {32}, rcpu_test::q4_1_block(0.5f, -1.0f, pattern(32, 16)));
  tensors.tensor("q5_0", 6, {32}, rcpu_test::q5_block(false, 0.5f, 0.0f, pattern(32, 32)));
  tensors.tensor("q5_1", 7, {32}, rcpu_test::q5_block(true, 0.5f, 1.0f, pattern(32, 32)));
  tensors.tensor("q8_0", 8, {32}, rcpu_test::q8_0_block(0.5f, pattern(32, 100)));
  tensors.tensor("q6_k", 14, {256}, std::vector<std::uint8_t>(210, 3));
  seeds.emplace_back("tensors_all_types", tensors.build());

  // Tiny models with each tokenizer.
  GgufBuilder spm;
  tiny_llama(spm, 262, false);
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
  std::vector<float> scores{0, 0, 0};
  std::vector<std::int32_t> types{2, 3, 3};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    scores.push_back(0);
    types.push_back(6);
  }
  for (const char* p : {"\xE2\x96\x81", "\xE2\x96\x81H", "el"}) {
    tokens.push_back(p);
    scores.push_back(-1);
    types.push_back(1);
  }
  spm.kv_string("tokenizer.ggml.model", "llama").kv_strings("tokenizer.ggml.tokens", tokens);
  spm.kv_f32s("tokenizer.ggml.scores", scores).kv_i32s("tokenizer.ggml.token_type", types);
  spm.kv_u32("tokenizer.ggml.bos_token_id", 1).kv_u32("tokenizer.ggml.eos_token_id", 2);
  seeds.emplace_back("tiny_llama_spm", spm.build());

  GgufBuilder bpe;
  std::vector<std::string> btok{"<|endoftext|>"};
  std::uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    // GPT-2's byte alphabet: printable bytes stand for themselves, the others map to U+0100 onwards.
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const std::uint32_t cp = printable ? static_cast<std::uint32_t>(b) : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    btok.push_back(s);
  }
  btok.push_back("\xC4\xA0w");
  btok.push_back("or");
  tiny_llama(bpe, static_cast<int>(btok.size()), true);
  bpe.kv_string("tokenizer.ggml.model", "gpt2").kv_string("tokenizer.ggml.pre", "smollm");
  bpe.kv_strings("tokenizer.ggml.tokens", btok).kv_strings("tokenizer.ggml.merges", {"\xC4\xA0 w", "o r"});
  bpe.kv_bool("tokenizer.ggml.add_bos_token", false);
  seeds.emplace_back("tiny_llama_bpe", bpe.build());

  // Broken files.
  const auto valid = tensors.build();
  seeds.emplace_back("truncated", std::vector<std::uint8_t>(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(valid.size() / 2)));
  GgufBuilder magic = minimal;
  magic.magic = "GGML";
  seeds.emplace_back("bad_magic", magic.build());
  GgufBuilder v1 = minimal;
  v1.version = 1;
  seeds.emplace_back("version1", v1.build());
  GgufBuilder counts = meta;
  counts.kv_count_override = 1ull << 40;
  seeds.emplace_back("huge_count", counts.build());

  for (const auto& s : seeds) {
    std::ofstream out(dir + "/" + s.first + ".seed", std::ios::binary);
    out.write(reinterpret_cast<const char*>(s.second.data()), static_cast<std::streamsize>(s.second.size()));
    if (!out) {
      std::cerr << "cannot write " << dir << "/" << s.first << ".seed\n";
      return 1;
    }
  }
  std::cout << "wrote " << seeds.size() << " seeds to " << dir << "\n";
  return 0;
}
