// libFuzzer target for the GGUF reader, and what is built on it: parse any bytes, read every metadata value,
// dequantize every tensor (up to a budget), build the tokenizer and the model the metadata describe, and
// run a tiny forward pass. The only exception allowed out of the library is rcpu::invalid_argument; a
// crash, a sanitizer report or any other exception is a finding.
//
// Build with clang:  see fuzz/README.md.  The same entry point is replayed over the seed corpus by
// fuzz/replay_main.cpp as a CTest test (model_fuzz_seed_corpus), with g++ or clang++.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <rcpu/io/gguf.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/tokenizer.hpp>

namespace {

void touch(const rcpu::io::GgufValue& v) {
  try {
    switch (v.type()) {
      case rcpu::io::GgufValueType::string: (void)v.as_string().size(); break;
      case rcpu::io::GgufValueType::boolean: (void)v.as_bool(); break;
      case rcpu::io::GgufValueType::float32:
      case rcpu::io::GgufValueType::float64: (void)v.as_double(); break;
      case rcpu::io::GgufValueType::array:
        for (std::size_t i = 0; i < v.size(); ++i) touch(v.at(i));
        break;
      default: (void)v.as_int(); break;
    }
  } catch (const rcpu::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rcpu::io::GgufFile file;
  try {
    file = rcpu::io::GgufFile::from_memory(data, size, "fuzz");
  } catch (const rcpu::invalid_argument&) {
    return 0;
  }
  for (const auto& kv : file.metadata()) touch(kv.second);
  std::uint64_t budget = 1u << 20;  // elements dequantized per input: keeps each run fast
  for (const auto& t : file.tensors()) {
    if (t.n_elements > budget) continue;
    budget -= t.n_elements;
    try {
      const std::vector<float> v = file.tensor_values(t);
      (void)v;
    } catch (const rcpu::invalid_argument&) {
    }
  }
  try {
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    const auto ids = tok.encode("Hello world's 2019 \xC3\xA9t\xC3\xA9\n\n  x\xFF", true);
    (void)tok.decode(ids);
  } catch (const rcpu::invalid_argument&) {
  }
  try {
    const rcpu::model::LlamaModel model = rcpu::model::LlamaModel::from_gguf(file);
    const auto& c = model.config();
    if (c.d_model <= 256 && c.vocab <= 4096 && c.n_layers <= 4 && c.ffn <= 1024) {
      const std::vector<std::int32_t> ids{0, static_cast<std::int32_t>(c.vocab - 1), 0, 0};
      (void)model.logits(ids, 2);
    }
  } catch (const rcpu::invalid_argument&) {
  }
  return 0;
}
