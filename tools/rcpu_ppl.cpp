// rcpu-ppl: perplexity of a LLaMA-architecture GGUF model on a text file, in the RCPU paper's protocol
// (non-overlapping 128-token windows, PPL = exp(mean token cross-entropy)).
//
//   rcpu-ppl MODEL.gguf TEXT.txt [--windows N | --first N] [--window 128] [--batch 8] [--threads N]
//            [--raw] [--dump-tokens FILE] [--dump-logits FILE] [--tokens-only] [--no-ppl] [--quiet]
//
// By default the text is prepared as the paper's evaluation does for WikiText-2 (lines joined with
// "\n\n", see rcpu::model::wikitext_protocol_text); --raw tokenizes the file as it is.
// The last line is machine-readable: "RESULT key=value ...".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <rcpu/kernels.hpp>
#include <rcpu/io/gguf.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/tokenizer.hpp>

#ifdef RCPU_TOOL_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

void usage() {
  std::cerr << "usage: rcpu-ppl MODEL.gguf TEXT.txt [--windows N | --first N] [--window 128] [--batch 8]\n"
               "                [--threads N] [--raw] [--dump-tokens FILE] [--dump-logits FILE] [--tokens-only]\n"
               "                [--no-ppl] [--quiet]\n"
               "  --windows N    evaluate N windows spread evenly over the text (fixed subset)\n"
               "  --first N      evaluate the first N windows\n"
               "  --raw          tokenize the file as is (default: WikiText protocol, lines joined with \\n\\n)\n"
               "  --threads N    BLAS threads (OpenBLAS builds)\n"
               "  --dump-tokens  write the token ids, one per line\n"
               "  --dump-logits  write the logits of the selected windows (float32, token-major, tokens x vocab)\n"
               "  --no-ppl       skip the perplexity (e.g. with --dump-logits)\n";
}

long parse_long(const std::string& s, const char* name) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || v < 0) {
    std::cerr << "rcpu-ppl: " << name << " needs a non-negative integer, got '" << s << "'\n";
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  long windows = -1, first = -1, window = 128, batch = 8, threads = 0;
  bool raw = false, quiet = false, tokens_only = false, no_ppl = false;
  std::string dump, dump_logits;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "rcpu-ppl: " << name << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--windows")
      windows = parse_long(next("--windows"), "--windows");
    else if (a == "--first")
      first = parse_long(next("--first"), "--first");
    else if (a == "--window")
      window = parse_long(next("--window"), "--window");
    else if (a == "--batch")
      batch = parse_long(next("--batch"), "--batch");
    else if (a == "--threads")
      threads = parse_long(next("--threads"), "--threads");
    else if (a == "--raw")
      raw = true;
    else if (a == "--quiet")
      quiet = true;
    else if (a == "--tokens-only")
      tokens_only = true;
    else if (a == "--dump-tokens")
      dump = next("--dump-tokens");
    else if (a == "--dump-logits")
      dump_logits = next("--dump-logits");
    else if (a == "--no-ppl")
      no_ppl = true;
    else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::cerr << "rcpu-ppl: unknown option " << a << "\n";
      usage();
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2) {
    usage();
    return 2;
  }
#ifdef RCPU_TOOL_OPENBLAS
  if (threads > 0) openblas_set_num_threads(static_cast<int>(threads));
#endif
  if (threads > 0) Eigen::setNbThreads(static_cast<int>(threads));  // Eigen's products (with OpenMP)
  const rcpu::KernelInfo kernels = rcpu::kernel_info();
  const std::string notice = rcpu::kernel_notice(kernels);
  if (!notice.empty()) std::cerr << notice << "\n";
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(pos[0]);
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    std::ifstream in(pos[1], std::ios::binary);
    if (!in) {
      std::cerr << "rcpu-ppl: cannot read " << pos[1] << "\n";
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = raw ? ss.str() : rcpu::model::wikitext_protocol_text(ss.str());
    const auto t1 = std::chrono::steady_clock::now();
    const std::vector<std::int32_t> ids = tok.encode(text);
    const auto t2 = std::chrono::steady_clock::now();
    const double tok_s = std::chrono::duration<double>(t2 - t1).count();
    if (!quiet)
      std::cerr << "rcpu-ppl: " << text.size() << " bytes -> " << ids.size() << " tokens in " << tok_s << " s\n";
    if (!dump.empty()) {
      std::ofstream out(dump);
      for (const auto id : ids) out << id << "\n";
    }
    if (tokens_only) {
      std::cout << "RESULT tokens=" << ids.size() << " bytes=" << text.size() << "\n";
      return 0;
    }
    const rcpu::model::LlamaModel model = rcpu::model::LlamaModel::from_gguf(file);
    const auto t3 = std::chrono::steady_clock::now();
    const auto& c = model.config();
    if (!quiet)
      std::cerr << "rcpu-ppl: " << c.n_layers << " layers, d " << c.d_model << ", heads " << c.n_heads << "/"
                << c.n_kv_heads << ", ffn " << c.ffn << ", vocab " << c.vocab << (c.tied_output ? ", tied head" : "")
                << "; loaded in " << std::chrono::duration<double>(t3 - t2).count() + std::chrono::duration<double>(t1 - t0).count()
                << " s\n";
    rcpu::model::PerplexityOptions opt;
    opt.window = window;
    opt.batch = batch;
    const rcpu::Index total = rcpu::model::count_windows(static_cast<rcpu::Index>(ids.size()), window);
    if (windows >= 0) opt.windows = rcpu::model::evenly_spaced_windows(total, windows);
    if (first >= 0)
      for (rcpu::Index w = 0; w < std::min<rcpu::Index>(first, total); ++w) opt.windows.push_back(w);
    if (!quiet) opt.progress = &std::cerr;
    if (!dump_logits.empty()) {
      if (opt.windows.empty()) {
        std::cerr << "rcpu-ppl: --dump-logits needs --first or --windows\n";
        return 2;
      }
      std::vector<std::int32_t> sel;
      for (const rcpu::Index w : opt.windows)
        sel.insert(sel.end(), ids.begin() + w * window, ids.begin() + (w + 1) * window);
      // tokens x vocab, written token-major (each token's logits contiguous).
      const Eigen::MatrixXf lt = model.logits(sel, window).transpose();
      std::ofstream out(dump_logits, std::ios::binary);
      out.write(reinterpret_cast<const char*>(lt.data()), static_cast<std::streamsize>(lt.size() * sizeof(float)));
      if (!out) {
        std::cerr << "rcpu-ppl: cannot write " << dump_logits << "\n";
        return 1;
      }
    }
    if (no_ppl) return 0;
    const rcpu::model::PerplexityResult r = rcpu::model::perplexity(model, ids, opt);
    std::printf("RESULT ppl=%.6f nll=%.8f windows=%ld of=%ld tokens=%ld seconds=%.3f tokens_per_second=%.1f "
                "products=%s openblas_core=%s\n",
                r.perplexity, r.mean_nll, static_cast<long>(r.windows), static_cast<long>(total),
                static_cast<long>(r.tokens_processed), r.seconds, r.tokens_per_second, rcpu::to_string(kernels.products),
                kernels.blas_core.empty() ? "(none)" : kernels.blas_core.c_str());
  } catch (const std::exception& e) {
    std::cerr << "rcpu-ppl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
