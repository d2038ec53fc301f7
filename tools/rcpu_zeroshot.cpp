// rcpu-zeroshot: zero-shot accuracy of a LLaMA-architecture GGUF model on the RCPU paper's seven tasks,
// as lm-evaluation-harness 0.4 computes it (rcpu/model/zeroshot.hpp).
//
//   rcpu-zeroshot MODEL.gguf DATA_DIR [--tasks boolq,piqa,...] [--per-task N] [--batch-tokens 2048]
//                 [--threads N] [--out FILE.jsonl] [--quiet]
//
// DATA_DIR holds <task>.jsonl as tools/zeroshot/fetch_tasks.sh writes them. --per-task N keeps the
// evenly spaced subset of N documents of each task (0: all). --out writes one JSON line per document
// (task, doc_id, gold, pred, pred_norm, per choice loglikelihood / is_greedy / tokens and the token
// ids of context and continuation), the input of
// tools/zeroshot/compare.py. One "RESULT" line per task on stdout, then the mean of the paper's metrics.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <rcpu/io/gguf.hpp>
#include <rcpu/kernels.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/tokenizer.hpp>
#include <rcpu/model/zeroshot.hpp>

#ifdef RCPU_TOOL_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

[[noreturn]] void usage(const std::string& error = "") {
  if (!error.empty()) std::cerr << "rcpu-zeroshot: " << error << "\n";
  std::cerr << "usage: rcpu-zeroshot MODEL.gguf DATA_DIR [--tasks a,b,...] [--per-task N] [--batch-tokens 2048]\n"
               "                     [--threads N] [--out FILE.jsonl] [--quiet]\n"
               "  DATA_DIR        <task>.jsonl files (tools/zeroshot/fetch_tasks.sh prints this folder)\n"
               "  --tasks         default: boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa\n"
               "  --per-task N    the evenly spaced subset of N documents per task (default 0: all)\n"
               "  --batch-tokens  rows per forward pass (documents x padded length)\n"
               "  --threads N     BLAS / OpenMP threads\n"
               "  --out FILE      per-document results as JSON Lines\n";
  std::exit(2);
}

long parse_long(const std::string& s, const char* name) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || v < 0) usage(std::string(name) + " needs a non-negative integer, got '" + s + "'");
  return v;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::vector<std::string> tasks;
  for (const auto& t : rcpu::model::zeroshot_tasks()) tasks.push_back(t.name);
  long per_task = 0, batch_tokens = 2048, threads = 0;
  bool quiet = false;
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tasks") tasks = split(next());
    else if (a == "--per-task") per_task = parse_long(next(), "--per-task");
    else if (a == "--batch-tokens") batch_tokens = parse_long(next(), "--batch-tokens");
    else if (a == "--threads") threads = parse_long(next(), "--threads");
    else if (a == "--out") out_path = next();
    else if (a == "--quiet") quiet = true;
    else if (a == "-h" || a == "--help") usage();
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else pos.push_back(a);
  }
  if (pos.size() != 2) usage("needs MODEL.gguf and DATA_DIR");
  if (tasks.empty()) usage("--tasks names no task");
#ifdef RCPU_TOOL_OPENBLAS
  if (threads > 0) openblas_set_num_threads(static_cast<int>(threads));
#endif
  if (threads > 0) Eigen::setNbThreads(static_cast<int>(threads));
  try {
    for (const std::string& t : tasks) (void)rcpu::model::zeroshot_task(t);
    const rcpu::KernelInfo kernels = rcpu::kernel_info();
    const std::string notice = rcpu::kernel_notice(kernels);
    if (!notice.empty() && !quiet) std::cerr << notice << "\n";
    const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(pos[0]);
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    const rcpu::model::LlamaModel model = rcpu::model::LlamaModel::from_gguf(file);
    std::ofstream out;
    if (!out_path.empty()) {
      out.open(out_path);
      if (!out) throw rcpu::invalid_argument("cannot write '" + out_path + "'");
      out << std::setprecision(17);
    }
    rcpu::model::ZeroShotOptions opt;
    opt.batch_tokens = batch_tokens;
    opt.progress = quiet ? nullptr : &std::cerr;
    double sum = 0;
    for (const std::string& name : tasks) {
      const auto task = rcpu::model::load_zeroshot_task(name, pos[1] + "/" + name + ".jsonl", per_task);
      const auto r = rcpu::model::evaluate_zeroshot(model, tok, task, opt);
      sum += r.paper_value();
      std::printf("RESULT task=%s docs=%zu acc=%.6f acc_norm=%.6f metric=%s value=%.6f tokens=%ld seconds=%.3f "
                  "tokens_per_second=%.1f\n",
                  name.c_str(), r.docs.size(), r.acc, r.acc_norm, rcpu::model::to_string(r.paper_metric), r.paper_value(),
                  static_cast<long>(r.tokens_processed), r.seconds, r.tokens_per_second);
      std::fflush(stdout);
      if (out) {
        const auto ids = [&](const std::vector<std::int32_t>& v) {
          std::string s = "[";
          for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
          return s + "]";
        };
        for (std::size_t k = 0; k < r.docs.size(); ++k) {
          const auto& d = r.docs[k];
          out << "{\"task\":\"" << name << "\",\"doc_id\":" << d.doc_id << ",\"gold\":" << d.gold << ",\"pred\":" << d.pred
              << ",\"pred_norm\":" << d.pred_norm << ",\"choices\":[";
          for (std::size_t c = 0; c < d.choices.size(); ++c) {
            // The token ids again (tokenizing is cheap), to explain differences from the harness.
            const auto t = rcpu::model::tokenize_request(tok, task.docs[k].requests[c]);
            const double ll = d.choices[c].loglikelihood;  // JSON has no -inf: null
            out << (c ? "," : "") << "{\"loglikelihood\":";
            if (std::isfinite(ll))
              out << ll;
            else
              out << "null";
            out
                << ",\"is_greedy\":" << (d.choices[c].is_greedy ? "true" : "false") << ",\"tokens\":" << d.choices[c].tokens
                << ",\"context_ids\":" << ids(t.context) << ",\"continuation_ids\":" << ids(t.continuation) << "}";
          }
          out << "]}\n";
        }
        out.flush();
      }
    }
    std::printf("RESULT mean=%.6f tasks=%zu\n", sum / static_cast<double>(tasks.size()), tasks.size());
  } catch (const rcpu::invalid_argument& e) {
    std::cerr << "rcpu-zeroshot: " << e.message() << "\n";
    return 1;
  }
  return 0;
}
