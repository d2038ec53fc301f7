// Checks on the real stories260K model (../shared/data/stories260K.gguf) against numbers saved from
// Hugging Face transformers (tests/model/reference/stories260k_transformers.txt; the command that
// regenerates them is in that file): loading, tokenizing, one forward pass, perplexity.
//
// Its own main(): prints "SKIPPED: ..." and returns 77 (CTest reports the test as skipped) when the model
// is absent. The data folder is RCPU_DATA_DIR if set, else ../shared/data beside the source tree.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <rcpu/io/gguf.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/tokenizer.hpp>
#include <rcpu/statistics.hpp>
#include "../standalone_checks.hpp"

namespace {

using rcpu_test::check;


bool file_exists(const std::string& p) { return static_cast<bool>(std::ifstream(p)); }

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string from_hex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

struct Reference {
  std::vector<std::string> texts;
  std::vector<std::vector<std::int32_t>> ids;
  long prefix_bytes = -1, prefix_count = -1;
  unsigned long long prefix_checksum = 0;
  long seq = 0;
  std::vector<std::int32_t> logit_ids;
  struct Row {
    long window, position;
    std::vector<float> values;
  };
  std::vector<Row> logits;
  long ppl_windows = 0;
  double ppl = 0, nll = 0;
};

Reference load_reference(const std::string& path) {
  Reference r;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "text") {
      std::string h;
      ls >> h;
      r.texts.push_back(from_hex(h));
    } else if (key == "ids") {
      long n;
      ls >> n;
      std::vector<std::int32_t> v(static_cast<std::size_t>(n));
      for (auto& x : v) ls >> x;
      r.ids.push_back(v);
    } else if (key == "prefix") {
      ls >> r.prefix_bytes >> r.prefix_count >> r.prefix_checksum;
    } else if (key == "logit_ids") {
      long n;
      ls >> r.seq >> n;
      r.logit_ids.resize(static_cast<std::size_t>(n));
      for (auto& x : r.logit_ids) ls >> x;
    } else if (key == "logits") {
      Reference::Row row;
      long n;
      ls >> row.window >> row.position >> n;
      row.values.resize(static_cast<std::size_t>(n));
      for (auto& x : row.values) ls >> x;
      r.logits.push_back(row);
    } else if (key == "ppl") {
      ls >> r.ppl_windows >> r.ppl >> r.nll;
    }
  }
  return r;
}

unsigned long long checksum(const std::vector<std::int32_t>& ids) {
  const unsigned long long p = (1ull << 61) - 1;
  unsigned long long s = 0;
  for (std::size_t i = 0; i < ids.size(); ++i)
    s = (s + (static_cast<unsigned long long>(i + 1) * static_cast<unsigned long long>(ids[i] + 1)) % p) % p;
  return s;
}

}  // namespace

int main() {
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  const std::string model_path = data + "/stories260K.gguf";
  const std::string text_path = data + "/wikitext-2-raw-test.txt";
  const std::string ref_path = RCPU_SOURCE_DIR "/tests/model/reference/stories260k_transformers.txt";
  if (!file_exists(model_path)) {
    std::cout << "SKIPPED: " << model_path << " not found (see docs/models.md; set RCPU_DATA_DIR)\n";
    return 77;
  }
  if (!file_exists(ref_path)) {
    std::cout << "FAILED: reference file " << ref_path << " is missing\n";
    return 1;
  }
  const Reference ref = load_reference(ref_path);
  try {
    // Loading.
    const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(model_path);
    check(file.version() == 3, "GGUF version 3");
    check(file.tensors().size() == 48, "48 tensors");
    const rcpu::model::LlamaModel model = rcpu::model::LlamaModel::from_gguf(file);
    const auto& c = model.config();
    check(c.n_layers == 5 && c.d_model == 64 && c.n_heads == 8 && c.n_kv_heads == 4 && c.head_dim == 8 &&
              c.ffn == 172 && c.vocab == 512 && c.n_rot == 8 && !c.tied_output,
          "configuration 5 layers, d 64, 8/4 heads, head_dim 8, ffn 172, vocab 512, separate head");

    // Tokenizer.
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    check(tok.vocab_size() == 512 && tok.bos_id() == 1 && tok.eos_id() == 2 && tok.add_bos(), "tokenizer metadata");
    check(!ref.texts.empty() && ref.texts.size() == ref.ids.size(), "reference paragraphs present");
    for (std::size_t i = 0; i < ref.texts.size(); ++i) {
      const auto ids = tok.encode(ref.texts[i]);
      check(ids == ref.ids[i], "paragraph " + std::to_string(i) + ": ids equal transformers' (" +
                                   std::to_string(ids.size()) + " vs " + std::to_string(ref.ids[i].size()) + ")");
      check(tok.decode(ids) == ref.texts[i], "paragraph " + std::to_string(i) + ": decode(encode(text)) == text");
    }

    // One forward pass: two windows of `seq` tokens, rows compared with transformers' logits.
    const Eigen::MatrixXf logits = model.logits(ref.logit_ids, ref.seq);
    double max_diff = 0;
    for (const auto& row : ref.logits) {
      const Eigen::Index r = row.window * ref.seq + row.position;
      for (std::size_t v = 0; v < row.values.size(); ++v)
        max_diff = std::max(max_diff, std::abs(static_cast<double>(logits(r, static_cast<Eigen::Index>(v))) - row.values[v]));
    }
    std::cout << "logits: max |rcpu - transformers| = " << max_diff << " over " << ref.logits.size() << " rows\n";
    check(ref.logits.size() == 4 && max_diff < 2e-4, "logits within 2e-4 of transformers'");

    // The accumulator sees the o_proj input of a layer: tokens x (heads * head_dim).
    rcpu::Statistics<float> so(64), sd(172);
    const auto taps = rcpu::model::statistics_taps<double>(2, &so, &sd);
    model.forward_hidden(ref.logit_ids, ref.seq, &taps);
    check(so.tokens() == static_cast<rcpu::Index>(ref.logit_ids.size()) && sd.tokens() == so.tokens(),
          "statistics taps accumulate every token");

    if (!file_exists(text_path)) {
      std::cout << "SKIPPED (part): " << text_path << " not found: whole-text tokenization and perplexity not checked\n";
    } else {
      // A prefix of the protocol text (cut at a row boundary) keeps sanitizer builds quick; the whole
      // text is compared by tools/reference_transformers/compare.py.
      const std::string full = rcpu::model::wikitext_protocol_text(read_file(text_path));
      check(ref.prefix_bytes > 0 && static_cast<std::size_t>(ref.prefix_bytes) <= full.size(), "reference prefix present");
      const std::string text = full.substr(0, static_cast<std::size_t>(std::max(0L, ref.prefix_bytes)));
      const auto ids = tok.encode(text);
      check(static_cast<long>(ids.size()) == ref.prefix_count && checksum(ids) == ref.prefix_checksum,
            "first " + std::to_string(text.size()) + " bytes of WikiText-2 test: " + std::to_string(ids.size()) +
                " tokens, identical to transformers'");
      rcpu::model::PerplexityOptions opt;
      for (long w = 0; w < ref.ppl_windows; ++w) opt.windows.push_back(w);
      const auto r = rcpu::model::perplexity(model, ids, opt);
      std::cout << "perplexity (first " << ref.ppl_windows << " windows): rcpu " << r.perplexity << ", transformers "
                << ref.ppl << "\n";
      check(std::abs(r.perplexity / ref.ppl - 1) < 1e-4, "perplexity within 0.01% of transformers'");
    }
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  return rcpu_test::finish();
}
