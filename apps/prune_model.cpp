// SPDX-License-Identifier: MIT
// rcpu prune-model: prunes a whole LLaMA-architecture GGUF model on a calibration text (the RCPU
// pipeline of rcpu/model/pipeline.hpp) and writes the pruned model as a GGUF file that llama.cpp runs
// (rcpu/model/export.hpp). Every argument and input file is checked before any work starts; the output
// is written to a temporary file and renamed into place only when complete.

#include <rcpu/io/gguf.hpp>
#include <rcpu/model/export.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/provenance.hpp>
#include <rcpu/model/streamed.hpp>
#include <rcpu/model/tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "cli_args.hpp"

namespace rcpu_cli {

const char* const prune_model_help =
    R"(  rcpu prune-model IN.gguf -o OUT.gguf --ratio R --calib TEXT [options]

  Prunes attention heads and MLP channels of every layer of a LLaMA-architecture GGUF model with the
  RCPU pipeline (layer by layer on calibration windows of TEXT), and writes the pruned model as GGUF:
  plain `llama` when all layers keep the same sizes and have no bias, else `deci` (per-layer sizes),
  which llama.cpp runs. The model is read one layer at a time and each pruned layer written at once,
  so memory does not grow with the model (a scratch file of the output's size sits beside OUT until
  the end). Options:
    -o, --out FILE       output GGUF (replaced only when complete; never the input)
    --ratio R            fraction of heads and channels removed per layer, in [0, 1)
    --attention-ratio R, --mlp-ratio R   separate ratios for heads and channels
    --method M           rotation (default), rotation_scale, rotation_bias, none, wanda_sp, flap,
                         flap_alam, ridge, rotation_ridge, per_head, rcpu_rotation_alam, ...
                         (docs/pipeline.md)
    --lambda A           relative ridge strength of --method ridge and rotation_ridge (default 0.03)
    --calib TEXT         calibration text file (UTF-8)
    --wikitext           prepare TEXT as the paper does for WikiText-2 (lines joined with "\n\n")
    --calib-fraction F   draw the windows from the first F of TEXT's tokens (default 1)
    --windows N          calibration windows (default 128)
    --seq L              tokens per window (default 128)
    --seed S             seed of the window draw (default 20251009)
    --gqa-rule G         query_heads (default), kv_groups, balanced
    --statistics S       where each layer's statistics come from: pruned (default; the dense layer on
                         the already-pruned layers' outputs) or dense (the dense model's hidden states,
                         one pass: FLAP's code)
    --gqa-fix F          how uneven KV groups are written uniform: cheapest (default), pad_queries,
                         duplicate_kv (both exact)
    --round-to M         round kept channels (and heads * head_dim) to multiples of M (e.g. 32, 64, 256)
    --type T[,T...]      weight type: f32 (default, exact), f16, bf16, q8_0, q4_0; several types write
                         one file each from one pruning run (then -o must contain {type})
    --chunk-windows N    windows per forward chunk (memory; default 32)
    --quiet              no progress bar or summary
)";

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::vector<OptionSpec> prune_model_options = {
    {"--out", 1},           {"--ratio", 1},       {"--attention-ratio", 1}, {"--mlp-ratio", 1},
    {"--method", 1},        {"--lambda", 1},      {"--calib", 1},           {"--wikitext", 0},
    {"--calib-fraction", 1}, {"--windows", 1},    {"--seq", 1},             {"--seed", 1},
    {"--gqa-rule", 1},      {"--gqa-fix", 1},     {"--round-to", 1},        {"--type", 1},
    {"--chunk-windows", 1}, {"--quiet", 0},       {"--statistics", 1}};

// A library parse error (unknown name) reported as a usage error of `option`.
template <typename F>
auto named(const char* option, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const rcpu::invalid_argument& e) {
    throw UsageError(std::string(option) + ": " + e.what());
  }
}

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError("--calib " + path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("--calib " + path + ": cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string seconds(double s) {
  char buf[32];
  if (s < 100)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", long(s) / 60, long(s) % 60);
  return buf;
}

void progress(Index done, Index total, double elapsed) {
  const int width = 30;
  const int filled = int(double(width) * double(done) / double(total));
  const double eta = done > 0 ? elapsed / double(done) * double(total - done) : 0.0;
  std::fprintf(stderr, "\r  pruning [%s%s] %ld/%ld layers, %s, ETA %s   ", std::string(std::size_t(filled), '#').c_str(),
               std::string(std::size_t(width - filled), '.').c_str(), long(done), long(total), seconds(elapsed).c_str(),
               seconds(eta).c_str());
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

int cmd_prune_model(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv;
  for (const std::string& a : argv_in) argv.push_back(a == "-o" ? "--out" : a);
  const Args a(argv, prune_model_options, true);
  if (a.positional().size() != 1)
    throw UsageError("prune-model needs exactly one input model, got " + std::to_string(a.positional().size()));
  const std::string in_path = a.positional().front();
  if (!a.has("--out")) throw UsageError("prune-model needs -o OUT.gguf");
  if (!a.has("--ratio") && !(a.has("--attention-ratio") && a.has("--mlp-ratio")))
    throw UsageError("prune-model needs --ratio (or both --attention-ratio and --mlp-ratio)");
  if (!a.has("--calib")) throw UsageError("prune-model needs --calib TEXT");
  const std::string out_path = a.value("--out");
  const bool quiet = a.has("--quiet");

  // Every option is checked before the model is read.
  const std::string method = a.value("--method", "rotation");
  rcpu::model::PipelineOptions opt =
      named("--method", [&] { return rcpu::model::method_options(method, a.number("--ratio", 0.0)); });
  const auto ratio_in_range = [&](const char* name, double r) {
    if (!(r >= 0.0 && r < 1.0)) throw UsageError(std::string(name) + " = " + a.value(name) + " must be in [0, 1)");
  };
  if (a.has("--ratio")) ratio_in_range("--ratio", opt.ratio);
  if (a.has("--attention-ratio")) ratio_in_range("--attention-ratio", opt.attention_ratio = a.number("--attention-ratio", -1));
  if (a.has("--mlp-ratio")) ratio_in_range("--mlp-ratio", opt.mlp_ratio = a.number("--mlp-ratio", -1));
  if (opt.compensation == rcpu::Compensation::proximal_ridge || opt.compensation == rcpu::Compensation::rotation_ridge) {
    opt.relative_lambda = a.number("--lambda", 0.03);
    if (!(opt.relative_lambda > 0)) throw UsageError("--lambda must be > 0");
  } else if (a.has("--lambda")) {
    throw UsageError("--lambda is only used by --method ridge and rotation_ridge");
  }
  opt.seq_len = a.integer("--seq", 128);
  if (opt.seq_len < 2) throw UsageError("--seq must be >= 2");
  const Index windows = a.integer("--windows", 128);
  if (windows < 1) throw UsageError("--windows must be >= 1");
  opt.chunk_windows = a.integer("--chunk-windows", 32);
  if (opt.chunk_windows < 1) throw UsageError("--chunk-windows must be >= 1");
  const Index seed_in = a.integer("--seed", 20251009);
  if (seed_in < 0) throw UsageError("--seed must be >= 0");
  const auto seed = static_cast<std::uint64_t>(seed_in);
  const double fraction = a.number("--calib-fraction", 1.0);
  if (!(fraction > 0 && fraction <= 1)) throw UsageError("--calib-fraction must be in (0, 1]");
  if (a.has("--gqa-rule"))
    opt.gqa = named("--gqa-rule", [&] { return rcpu::model::gqa_rule_from_string(a.value("--gqa-rule")); });
  if (a.has("--statistics"))
    opt.statistics =
        named("--statistics", [&] { return rcpu::model::statistics_source_from_string(a.value("--statistics")); });
  rcpu::model::ExportOptions ex;
  if (a.has("--gqa-fix"))
    ex.gqa_fix = named("--gqa-fix", [&] { return rcpu::model::gqa_fix_from_string(a.value("--gqa-fix")); });
  opt.round_to = a.integer("--round-to", 0);
  if (opt.round_to < 0) throw UsageError("--round-to must be >= 0");
  std::vector<std::string> type_names;
  {
    std::stringstream ss(a.value("--type", "f32"));
    std::string t;
    while (std::getline(ss, t, ',')) type_names.push_back(t);
  }
  if (type_names.empty()) throw UsageError("--type needs a type");
  std::vector<rcpu::io::GgmlType> types;
  std::vector<std::string> out_paths;
  for (const std::string& t : type_names) {
    types.push_back(named("--type", [&] { return rcpu::io::ggml_type_from_string(t, true); }));
    std::string p = out_path;
    const std::size_t at = p.find("{type}");
    if (at != std::string::npos) p.replace(at, 6, t);
    if (std::find(out_paths.begin(), out_paths.end(), p) != out_paths.end())
      throw UsageError("-o " + out_path + ": several --type values need {type} in the output name");
    out_paths.push_back(p);
  }

  std::error_code ec;
  if (!fs::is_regular_file(in_path, ec)) throw InputError(in_path + ": no such file");
  for (const std::string& p : out_paths) {
    if (fs::exists(p, ec) && fs::equivalent(in_path, p, ec))
      throw InputError("-o " + p + ": is the input model; write the pruned model elsewhere");
    const fs::path out_dir = fs::absolute(p, ec).parent_path();
    if (!fs::is_directory(out_dir, ec)) throw InputError("-o " + p + ": the directory " + out_dir.string() + " does not exist");
  }

  const std::string calib_path = a.value("--calib");
  const std::string raw = read_text(calib_path);
  const auto t0 = Clock::now();
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(in_path);
  const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
  const std::string text = a.has("--wikitext") ? rcpu::model::wikitext_protocol_text(raw) : raw;
  const std::vector<std::int32_t> ids = tok.encode(text);
  const Index usable = Index(double(ids.size()) * fraction);
  if (usable < opt.seq_len)
    throw InputError("--calib " + calib_path + ": " + std::to_string(ids.size()) + " tokens" +
                     (fraction < 1 ? " (" + std::to_string(usable) + " in the --calib-fraction)" : std::string()) +
                     " hold no window of --seq " + std::to_string(opt.seq_len) + " tokens");
  const std::vector<Index> starts = rcpu::model::random_windows(0, usable, opt.seq_len, windows, seed);
  const std::vector<std::int32_t> calib = rcpu::model::gather_windows(ids, starts, opt.seq_len);
  // The model is read one layer at a time and each pruned layer written at once (streamed.hpp): memory
  // does not grow with the model. Here only its layout is read.
  const rcpu::model::LlamaConfig c = rcpu::model::LlamaGgufReader(file).config();
  const double t_load = std::chrono::duration<double>(Clock::now() - t0).count();
  // What llama.cpp could not load is refused before the pruning is paid for.
  std::vector<rcpu::model::StreamedTarget> targets;
  for (std::size_t i = 0; i < types.size(); ++i) {
    ex.type = types[i];
    rcpu::model::check_exportable(c, &file, ex);
    targets.push_back({out_paths[i], ex});
  }
  if (!quiet)
    std::fprintf(stderr,
                 "rcpu prune-model: %s: %ld layers, d %ld, heads %ld/%ld (kv), ffn %ld, vocab %ld; %zu calibration "
                 "tokens from %s (%ld windows of %ld); method %s, loaded in %s\n",
                 in_path.c_str(), long(c.n_layers), long(c.d_model), long(c.n_heads), long(c.n_kv_heads), long(c.ffn),
                 long(c.vocab), ids.size(), calib_path.c_str(), long(windows), long(opt.seq_len),
                 rcpu::model::method_name(method), seconds(t_load).c_str());

  const auto t1 = Clock::now();
  rcpu::model::LayerCallback on_layer;
  if (!quiet) {
    progress(0, c.n_layers, 0.0);
    on_layer = [&](Index l, Index n) { progress(l + 1, n, std::chrono::duration<double>(Clock::now() - t1).count()); };
  }
  rcpu::model::CalibrationInfo info;
  info.text = fs::path(calib_path).filename().string() + (a.has("--wikitext") ? " (wikitext protocol)" : "");
  info.windows = windows;
  info.seq_len = opt.seq_len;
  info.seed = seed;
  // Every file is published only when all are complete: a failure leaves none of them.
  const rcpu::model::StreamedResult sr =
      rcpu::model::prune_model_streamed(file, calib, opt, targets, &info, nullptr, on_layer);
  const rcpu::model::PipelineResult& r = sr.result;
  const std::vector<rcpu::model::ExportReport>& reps = sr.exports;
  const double t_write = sr.seconds_write;
  const double t_prune = std::chrono::duration<double>(Clock::now() - t1).count() - t_write;
  const rcpu::model::ExportReport& rep = reps.front();

  if (!quiet) {
    for (std::size_t i = 0; i < types.size(); ++i)
      std::printf("rcpu prune-model: %s -> %s (%s, %s weights, %.1f MB), %s\n", in_path.c_str(), out_paths[i].c_str(),
                  reps[i].architecture.c_str(), rcpu::io::to_string(types[i]), double(reps[i].file_bytes) / 1e6,
                  rcpu::model::method_name(method));
    std::printf("  parameters %ld -> %ld (%.1f%% removed); written %ld (with GQA padding)\n",
                long(r.parameters_dense), long(r.parameters),
                100.0 * double(r.parameters_dense - r.parameters) / double(r.parameters_dense), long(rep.parameters));
    std::printf("  layer  heads(kv)  written(kv)  channels\n");
    for (std::size_t l = 0; l < r.layers.size(); ++l) {
      const rcpu::model::LayerOutcome& o = r.layers[l];
      const rcpu::model::UniformGqa& u = rep.attention[l];
      std::string fix;
      if (u.zero_heads) fix += " +" + std::to_string(u.zero_heads) + " zero heads";
      if (u.kv_copies) fix += " +" + std::to_string(u.kv_copies) + " KV copies";
      std::printf("  %5zu  %5ld(%ld)  %7ld(%ld)  %8ld%s\n", l, long(o.heads), long(o.kv_heads), long(u.heads),
                  long(u.kv_heads), long(o.channels), fix.c_str());
    }
    for (std::size_t i = 0; i < types.size(); ++i)
      if (!reps[i].f16_fallback.empty())
        std::printf("  %s: %zu weights written F16: their rows are not a multiple of the %s block (e.g. %s); use "
                    "--round-to 32\n",
                    rcpu::io::to_string(types[i]), reps[i].f16_fallback.size(), rcpu::io::to_string(types[i]),
                    reps[i].f16_fallback.front().c_str());
    std::printf("  time: load %s, prune %s, write %s\n", seconds(t_load).c_str(), seconds(t_prune).c_str(),
                seconds(t_write).c_str());
  }
  return 0;
}

}  // namespace rcpu_cli
