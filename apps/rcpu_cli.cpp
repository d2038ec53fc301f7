// SPDX-License-Identifier: MIT
// rcpu: the command-line tool. Prunes one linear layer given as .npy files, and accumulates, saves
// and merges calibration statistics, so that any pipeline (Python, shell) can use rcpu without C++;
// prunes a whole GGUF model (prune_model.cpp).
// Every error is one line on stderr and a non-zero exit; outputs are written to temporary files and
// renamed into place only when everything succeeded, so a failed run leaves no partial output.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rcpu/io/npy.hpp>
#include <rcpu/io/staged_output.hpp>
#include <rcpu/io/statistics_io.hpp>
#include <rcpu/rcpu.hpp>

#include "cli_args.hpp"

namespace {

namespace fs = std::filesystem;
using rcpu::Index;
using rcpu_cli::Args;
using rcpu_cli::InputError;
using rcpu_cli::OptionSpec;
using rcpu_cli::UsageError;

const char* const help_text = R"(rcpu - prune a linear layer y = W x + b with rotation-constrained error compensation (RCPU)

Usage:
  rcpu prune --weight W.npy (--acts X.npy... | --stats DIR...) (--ratio R | --kept-units K.npy)
             --out DIR [options]
  rcpu stats (--acts X.npy... | --stats DIR...) --out DIR [--diagonal]
  rcpu merge DIR... --out DIR
  rcpu prune-model IN.gguf -o OUT.gguf --ratio R --calib TEXT [options]   (a whole model; below)
  rcpu --help | --version

Commands:
  prune   Score the input columns (or heads) of W, keep the best 1 - R of them, compensate the kept
          columns from calibration statistics, and write the new weight, bias, kept indices and a
          JSON report into DIR.
  stats   Accumulate calibration statistics (token count, per-channel sums, Gram matrix) from
          activation files and/or saved statistics, and save them as a statistics directory DIR.
  merge   Merge saved statistics directories (token shards) into DIR; same as stats --stats DIR...
  prune-model
          Prune every layer of a LLaMA GGUF model and write the pruned model as GGUF (llama.cpp runs
          it); see "Whole models" below and docs/cli.md.

Inputs:
  --weight FILE        W, a 2-D float32/float64 array of shape (d_out, d_in). The outputs keep its dtype.
  --bias FILE          b, a float32/float64 vector of length d_out (optional; LLaMA layers have none).
  --acts FILE...       calibration activations at the layer's input: 2-D float32/float64 arrays of shape
                       (tokens, d_in), C or Fortran order, either byte order. Several files are streamed
                       one after another, 4096 rows at a time, so they never need to fit in memory.
  --stats DIR...       statistics directories saved by `rcpu stats` (or --save-stats); merged with
                       each other and with --acts.

Pruning (prune):
  --ratio R            fraction of units removed, in [0, 1): floor(R * units) units go.
  --kept-units FILE    explicit kept units (1-D int32/int64 array of column or head indices) instead of
                       --ratio and --score.
  --head-dim H         columns per unit: 1 (default) prunes input channels (down_proj); the head size
                       prunes whole attention heads, columns [h*H, (h+1)*H) (o_proj).
  --module M           mlp or attention (default: attention when --head-dim > 1, else mlp); FLAP's score
                       squares its metric again for attention.
  --score S            magnitude, wanda_sp, wanda_sp_rcpu, flap, rcpu (default), rcpu_paper.
  --group-reduce G     how a head's column scores combine: automatic (default: standardized_mean for
                       flap, sum otherwise), sum, standardized_mean.
  --compensation C     none, bias, rotation (default), rotation_scale, rotation_bias, least_squares,
                       proximal_ridge, rotation_ridge (the ridge pulled toward the rotated weight Q W_K).
  --lambda L           ridge strength of least_squares, proximal_ridge and rotation_ridge, added to the
                       Gram (a sum over tokens, so it scales with the token count); default 1e-4.
  --scale-epsilon E    added to ||Z||^2 in the scale of rotation_scale; default 0.
  --proper-rotation    force det Q = +1 (Kabsch sign fix); off by default, as in the RCPU authors' code.
  --procrustes M       how the rotation is computed: automatic (default: the library's fastest accurate
                       route), polar_eig, bdc_svd, jacobi_svd (slow, for checks), lapack_gesdd, newton,
                       mixed (rcpu::ProcrustesMethod; see docs/cli.md).
  --geometry           also compute the inner-product distortion in the report (costs d_out^2 d_in flops).
  --save-stats DIR     also save the accumulated statistics as a statistics directory.

Statistics (stats):
  --diagonal           keep only per-channel sums, no Gram (O(d) memory): enough for every score and for
                       the none and bias compensations, not for the others.

Output:
  --out DIR            output directory (created if missing). prune writes, replacing earlier ones:
                         weight.npy        (d_out, k) compensated weight over the kept columns, W's dtype
                         bias.npy          (d_out,) new bias, when W had one or the compensation adds one
                         kept_columns.npy  (k,) int64 kept input columns of W, increasing
                         kept_units.npy    int64 kept units (= kept_columns unless --head-dim > 1): the
                                           rows of q/k/v (heads) or gate/up (channels) to keep
                         scores.npy        float64 score of every unit (absent with --kept-units)
                         report.json       inputs, options, and the output error before/after
                                           compensation on the calibration tokens
                       stats and merge write a statistics directory (see docs/cli.md for its layout).
  --quiet              print nothing on success.
  --help               print this help.
  --version            print rcpu's version.

Exit status: 0 on success; 1 on bad input or a failed computation (one line on stderr, nothing
written); 2 on a usage error.

Whole models:
)";

// ---------------------------------------------------------------------------------------------
// Outputs written all or nothing: every file (and the --save-stats directory) is staged by
// rcpu::io::StagedOutput and published in one step at the end; a failure anywhere, the publication
// included, leaves the output directory and the statistics directory as they were.

class OutputSet {
 public:
  explicit OutputSet(std::string dir) : m_dir(std::move(dir)) {}
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;
  // A directory this run created stays only if the run published into it.
  ~OutputSet() {
    m_staged.discard();
    std::error_code ec;
    if (m_created && !m_published) fs::remove(m_dir, ec);  // only removes it if empty
  }

  // Creates the directory (only now, when there is something to write).
  void prepare() {
    std::error_code ec;
    if (fs::exists(m_dir, ec) && !fs::is_directory(m_dir, ec))
      throw InputError("--out " + m_dir + ": exists and is not a directory");
    m_created = !fs::exists(m_dir, ec);
    fs::create_directories(m_dir, ec);
    if (ec || !fs::is_directory(m_dir)) throw InputError("--out " + m_dir + ": cannot create the directory");
  }

  void add(const std::string& name, const std::function<void(std::ostream&)>& write) {
    const fs::path part = m_staged.stage(fs::path(m_dir) / name);
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write " + part.string());
    write(out);
    out.flush();
    if (!out) throw InputError("write failed: " + part.string() + " (disk full?)");
  }

  rcpu::io::StagedOutput& staged() { return m_staged; }

  // Publishes everything staged, and removes the `stale` files (an earlier run's outputs that this run
  // does not produce; they stay if the publication fails).
  void commit(const std::vector<std::string>& stale) {
    for (const auto& f : stale) m_staged.remove_on_publish(fs::path(m_dir) / f);
    m_staged.publish();
    m_published = true;
  }

 private:
  std::string m_dir;
  bool m_created = false, m_published = false;
  rcpu::io::StagedOutput m_staged;
};

// ---------------------------------------------------------------------------------------------
// JSON (just what the report needs)

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";  // JSON has no NaN/Inf
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_string(items[i]);
  return out + "]";
}

std::string json_comparison(const rcpu::OutputComparison& c) {
  return "{\"relative_error\": " + json_number(c.relative_error) + ", \"norm_ratio\": " + json_number(c.norm_ratio) +
         ", \"cosine\": " + json_number(c.cosine) +
         ", \"inner_product_distortion\": " + json_number(c.inner_product_distortion) + "}";
}

// ---------------------------------------------------------------------------------------------
// Statistics from activation files and saved directories

using Stats = rcpu::Statistics<double>;

// Whether the accumulated statistics keep the Gram.
enum class GramPolicy {
  required,      // every compensation but none/bias; a --stats directory without one is an error
  if_available,  // full unless a --stats directory was saved without one
  diagonal       // never (stats --diagonal)
};

// Opens every input first, so that a bad file late in the list fails before hours of streaming.
Stats gather_statistics(const std::vector<std::string>& act_files, const std::vector<std::string>& stats_dirs,
                 Index expected_channels, GramPolicy policy) {
  std::vector<std::unique_ptr<rcpu::io::NpyReader>> readers;
  Index d = expected_channels;
  std::string d_from = "--weight";
  for (const auto& f : act_files) {
    auto r = std::make_unique<rcpu::io::NpyReader>(f);
    if (r->dims() != 2)
      throw InputError("--acts " + f + ": has shape " + r->header().shape_string() +
                       "; expected a 2-D array (tokens, channels): reshape to (-1, channels) first");
    if (!rcpu::io::is_floating(r->header().dtype))
      throw InputError("--acts " + f + ": has dtype " + r->header().descr() + "; expected float32 or float64");
    if (d < 0) {
      d = r->cols();
      d_from = "--acts " + f;
    } else if (r->cols() != d) {
      throw InputError("--acts " + f + ": has " + std::to_string(r->cols()) + " channels (shape " +
                       r->header().shape_string() + ") but " + d_from + " implies " + std::to_string(d));
    }
    readers.push_back(std::move(r));
  }
  std::vector<Stats> loaded;
  for (const auto& dir : stats_dirs) {
    Stats s = rcpu::io::load_statistics<double>(dir);
    if (d < 0) {
      d = s.channels();
      d_from = "--stats " + dir;
    } else if (s.channels() != d) {
      throw InputError("--stats " + dir + ": has " + std::to_string(s.channels()) + " channels but " + d_from +
                       " implies " + std::to_string(d));
    }
    if (policy == GramPolicy::required && !s.has_gram())
      throw InputError("--stats " + dir + ": holds no Gram (saved with --diagonal), which this compensation needs");
    loaded.push_back(std::move(s));
  }
  if (d < 0) throw UsageError("no calibration input: give --acts or --stats");
  rcpu::GramMode mode = policy == GramPolicy::diagonal ? rcpu::GramMode::diagonal : rcpu::GramMode::full;
  for (const auto& s : loaded)
    if (!s.has_gram()) mode = rcpu::GramMode::diagonal;
  Stats st(d, mode);
  for (const auto& s : loaded) {
    if (s.has_gram() && mode == rcpu::GramMode::diagonal) {
      st.merge(Stats::from_sums(s.tokens(), s.sum(), s.abs_sum(), s.sq_sum(), s.m2(), Stats::Matrix()));
    } else {
      st.merge(s);
    }
  }
  for (auto& r : readers) {
    try {
      // Blocks of exactly Statistics::chunk_rows rows: the same blocks Statistics::update forms on its
      // own, so streaming gives bit for bit what one update() per file gives.
      for (;;) {
        if (r->header().dtype == rcpu::io::NpyDtype::float32) {
          const Eigen::MatrixXf block = r->read_rows<float>(Stats::chunk_rows);
          if (block.rows() == 0) break;
          st.update(block.cast<double>());
        } else {
          const Eigen::MatrixXd block = r->read_rows<double>(Stats::chunk_rows);
          if (block.rows() == 0) break;
          st.update(block);
        }
      }
    } catch (const rcpu::invalid_argument& e) {
      const std::string what = e.what();
      throw InputError("--acts " + r->path() + ": " + (what.rfind("rcpu: ", 0) == 0 ? what.substr(6) : what));
    }
  }
  if (st.tokens() == 0) throw InputError("the calibration inputs hold no tokens");
  return st;
}

// ---------------------------------------------------------------------------------------------
// Commands

const std::vector<OptionSpec> prune_options = {
    {"--weight", 1},        {"--bias", 1},          {"--acts", -1},       {"--stats", -1},
    {"--ratio", 1},         {"--kept-units", 1},    {"--head-dim", 1},    {"--module", 1},
    {"--score", 1},         {"--group-reduce", 1},  {"--compensation", 1}, {"--lambda", 1},
    {"--scale-epsilon", 1}, {"--proper-rotation", 0}, {"--procrustes", 1},       {"--geometry", 0},
    {"--save-stats", 1},    {"--out", 1},           {"--quiet", 0}};

const std::vector<OptionSpec> stats_options = {
    {"--acts", -1}, {"--stats", -1}, {"--diagonal", 0}, {"--out", 1}, {"--quiet", 0}};

const std::vector<OptionSpec> merge_options = {{"--out", 1}, {"--quiet", 0}};

rcpu::GroupReduce parse_group_reduce(const std::string& s) {
  if (s == "automatic") return rcpu::GroupReduce::automatic;
  if (s == "sum") return rcpu::GroupReduce::sum;
  if (s == "standardized_mean") return rcpu::GroupReduce::standardized_mean;
  throw UsageError("--group-reduce: unknown value '" + s + "' (automatic, sum, standardized_mean)");
}
const char* group_reduce_name(rcpu::GroupReduce g) {
  switch (g) {
    case rcpu::GroupReduce::automatic: return "automatic";
    case rcpu::GroupReduce::sum: return "sum";
    case rcpu::GroupReduce::standardized_mean: return "standardized_mean";
  }
  return "unknown";
}

struct PruneRequest {
  rcpu::PruneOptions options;
  bool have_ratio = false;
  std::string kept_file, weight_file, bias_file, save_stats, out;
  std::vector<std::string> acts, stats;
  bool quiet = false;
};

PruneRequest parse_prune(const Args& a) {
  PruneRequest r;
  if (!a.has("--weight")) throw UsageError("prune needs --weight");
  if (!a.has("--out")) throw UsageError("prune needs --out");
  if (!a.has("--acts") && !a.has("--stats")) throw UsageError("prune needs --acts or --stats (calibration input)");
  if (a.has("--ratio") == a.has("--kept-units")) throw UsageError("prune needs exactly one of --ratio and --kept-units");
  r.weight_file = a.value("--weight");
  r.bias_file = a.value("--bias");
  r.acts = a.values("--acts");
  r.stats = a.values("--stats");
  r.out = a.value("--out");
  r.save_stats = a.value("--save-stats");
  r.kept_file = a.value("--kept-units");
  r.quiet = a.has("--quiet");
  rcpu::PruneOptions& o = r.options;
  r.have_ratio = a.has("--ratio");
  o.ratio = a.number("--ratio", 0.0);
  if (r.have_ratio && !(o.ratio >= 0.0 && o.ratio < 1.0))
    throw UsageError("--ratio " + a.value("--ratio") + " is outside [0, 1)");
  o.group_size = a.integer("--head-dim", 1);
  if (o.group_size < 1) throw UsageError("--head-dim " + a.value("--head-dim") + " must be >= 1");
  const std::string module = a.value("--module", o.group_size > 1 ? "attention" : "mlp");
  if (module == "mlp") {
    o.module = rcpu::Module::mlp;
  } else if (module == "attention") {
    o.module = rcpu::Module::attention;
  } else {
    throw UsageError("--module: unknown value '" + module + "' (mlp, attention)");
  }
  try {
    o.score = rcpu::score_from_string(a.value("--score", "rcpu"));
  } catch (const rcpu::invalid_argument& e) {
    throw UsageError("--score: " + std::string(e.what()).substr(6));
  }
  try {
    o.compensation = rcpu::compensation_from_string(a.value("--compensation", "rotation"));
  } catch (const rcpu::invalid_argument& e) {
    throw UsageError("--compensation: " + std::string(e.what()).substr(6));
  }
  o.group_reduce = parse_group_reduce(a.value("--group-reduce", "automatic"));
  o.compensation_options.lambda = a.number("--lambda", o.compensation_options.lambda);
  if (o.compensation_options.lambda < 0) throw UsageError("--lambda must be >= 0");
  o.compensation_options.scale_epsilon = a.number("--scale-epsilon", 0.0);
  if (o.compensation_options.scale_epsilon < 0) throw UsageError("--scale-epsilon must be >= 0");
  o.compensation_options.procrustes.proper_rotation = a.has("--proper-rotation");
  try {
    o.compensation_options.procrustes.method = rcpu::procrustes_method_from_string(a.value("--procrustes", "automatic"));
  } catch (const rcpu::invalid_argument& e) {
    throw UsageError("--procrustes: " + std::string(e.what()).substr(6));
  }
  o.compensation_options.geometry = a.has("--geometry");
  return r;
}

template <typename Scalar>
int run_prune(const PruneRequest& req, const rcpu::io::NpyHeader& weight_header) {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  const Matrix W = rcpu::io::load_npy_matrix<Scalar>(req.weight_file);
  if (W.rows() < 1 || W.cols() < 1)
    throw InputError("--weight " + req.weight_file + ": shape " + weight_header.shape_string() + " is empty");
  if (!W.allFinite()) throw InputError("--weight " + req.weight_file + ": has a NaN or infinite entry");
  const bool has_bias = !req.bias_file.empty();
  Vector b;
  if (has_bias) {
    b = rcpu::io::load_npy_vector<Scalar>(req.bias_file);
    if (b.size() != W.rows())
      throw InputError("--bias " + req.bias_file + ": has " + std::to_string(b.size()) + " entries but W has " +
                       std::to_string(W.rows()) + " rows");
    if (!b.allFinite()) throw InputError("--bias " + req.bias_file + ": has a NaN or infinite entry");
  }
  rcpu::PruneOptions opt = req.options;
  if (W.cols() % opt.group_size != 0)
    throw InputError("--head-dim " + std::to_string(opt.group_size) + " does not divide W's " +
                     std::to_string(W.cols()) + " columns");
  if (!req.kept_file.empty()) {
    opt.kept_units = rcpu::io::load_npy_indices(req.kept_file);
    const Index units = W.cols() / opt.group_size;
    if (opt.kept_units.empty()) throw InputError("--kept-units " + req.kept_file + ": is empty");
    std::vector<char> seen(static_cast<std::size_t>(units), 0);
    for (Index u : opt.kept_units) {
      if (u < 0 || u >= units)
        throw InputError("--kept-units " + req.kept_file + ": index " + std::to_string(u) + " is outside [0, " +
                         std::to_string(units) + ")");
      if (seen[std::size_t(u)]++) throw InputError("--kept-units " + req.kept_file + ": repeats index " + std::to_string(u));
    }
  }
  // none and bias need no Gram, but the report does: keep it unless the saved statistics lack it.
  const Stats st = gather_statistics(req.acts, req.stats, W.cols(),
                              rcpu::needs_gram(opt.compensation) ? GramPolicy::required : GramPolicy::if_available);

  const auto pruned = has_bias ? rcpu::prune_layer(W, b, st, opt) : rcpu::prune_layer(W, st, opt);
  if (pruned.report.info == rcpu::Info::no_convergence)
    throw InputError("the compensation failed (" + std::string(rcpu::to_string(pruned.report.info)) +
                     "): try another --procrustes method");
  if (!pruned.weight.allFinite() || (pruned.has_bias() && !pruned.bias.allFinite()))
    throw InputError("the compensated weight has non-finite entries (" +
                     std::string(rcpu::to_string(pruned.report.info)) + "); try a larger --lambda");

  // Everything is computed: write the outputs (temporary files first).
  OutputSet out(req.out);
  out.prepare();
  const rcpu::io::NpyWriteOptions wopt;
  out.add("weight.npy", [&](std::ostream& os) { rcpu::io::write_npy(os, pruned.weight, wopt); });
  if (pruned.has_bias())
    out.add("bias.npy", [&](std::ostream& os) { rcpu::io::write_npy_vector(os, pruned.bias, wopt); });
  auto indices = [](const std::vector<Index>& v) {
    return Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1>(
        Eigen::Map<const Eigen::Matrix<Index, Eigen::Dynamic, 1>>(v.data(), Index(v.size())).cast<std::int64_t>());
  };
  out.add("kept_columns.npy", [&](std::ostream& os) { rcpu::io::write_npy_vector(os, indices(pruned.kept_columns)); });
  out.add("kept_units.npy", [&](std::ostream& os) { rcpu::io::write_npy_vector(os, indices(pruned.kept_units)); });
  if (pruned.unit_scores.size() > 0)
    out.add("scores.npy", [&](std::ostream& os) { rcpu::io::write_npy_vector(os, pruned.unit_scores); });

  const rcpu::LayerReport& rep = pruned.report;
  const Index units = W.cols() / opt.group_size;
  const auto& co = opt.compensation_options;
  std::ostringstream js;
  js << "{\n"
     << "  \"rcpu_version\": \"" << RCPU_VERSION_MAJOR << "." << RCPU_VERSION_MINOR << "." << RCPU_VERSION_PATCH
     << "\",\n"
     << "  \"command\": \"prune\",\n"
     << "  \"weight\": {\"path\": " << json_string(req.weight_file) << ", \"rows\": " << W.rows()
     << ", \"cols\": " << W.cols() << ", \"dtype\": \"" << rcpu::io::to_string(weight_header.dtype) << "\"},\n"
     << "  \"bias\": " << (has_bias ? json_string(req.bias_file) : "null") << ",\n"
     << "  \"calibration\": {\"tokens\": " << st.tokens() << ", \"activation_files\": " << json_list(req.acts)
     << ", \"statistics_dirs\": " << json_list(req.stats) << "},\n"
     << "  \"options\": {\"ratio\": " << (req.have_ratio ? json_number(opt.ratio) : "null")
     << ", \"kept_units_file\": " << (req.kept_file.empty() ? "null" : json_string(req.kept_file))
     << ", \"head_dim\": " << opt.group_size << ", \"module\": \""
     << (opt.module == rcpu::Module::attention ? "attention" : "mlp") << "\", \"score\": \""
     << rcpu::to_string(opt.score) << "\", \"group_reduce\": \"" << group_reduce_name(opt.group_reduce)
     << "\", \"compensation\": \"" << rcpu::to_string(opt.compensation) << "\", \"lambda\": " << json_number(co.lambda)
     << ", \"scale_epsilon\": " << json_number(co.scale_epsilon)
     << ", \"proper_rotation\": " << (co.procrustes.proper_rotation ? "true" : "false") << ", \"procrustes\": \""
     << rcpu::to_string(co.procrustes.method) << "\", \"geometry\": " << (co.geometry ? "true" : "false") << "},\n"
     << "  \"units\": {\"total\": " << units << ", \"kept\": " << pruned.kept_units.size()
     << ", \"removed\": " << units - Index(pruned.kept_units.size()) << "},\n"
     << "  \"kept_columns\": " << pruned.kept_columns.size() << ",\n"
     << "  \"outputs\": {\"weight\": \"weight.npy\", \"bias\": " << (pruned.has_bias() ? "\"bias.npy\"" : "null")
     << ", \"kept_columns\": \"kept_columns.npy\", \"kept_units\": \"kept_units.npy\", \"scores\": "
     << (pruned.unit_scores.size() > 0 ? "\"scores.npy\"" : "null") << "},\n"
     << "  \"report\": {\"tokens\": " << rep.tokens << ", \"rows\": " << rep.rows << ", \"columns\": " << rep.columns
     << ", \"kept_columns\": " << rep.kept_columns << ", \"info\": \"" << rcpu::to_string(rep.info) << "\""
     << ", \"underdetermined\": " << (rep.underdetermined ? "true" : "false") << ",\n"
     << "    \"before\": " << json_comparison(rep.before) << ",\n"
     << "    \"after\": " << json_comparison(rep.after) << ",\n"
     << "    \"scale\": " << json_number(rep.scale) << ", \"rank_m\": " << rep.rank_m
     << ", \"condition_m\": " << json_number(rep.condition_m)
     << ", \"reflection_fixed\": " << (rep.reflection_fixed ? "true" : "false") << "}\n"
     << "}\n";
  const std::string report = js.str();
  out.add("report.json", [&](std::ostream& os) { os << report; });
  if (!req.save_stats.empty()) rcpu::io::stage_statistics(out.staged(), req.save_stats, st);
  std::vector<std::string> stale;
  if (!pruned.has_bias()) stale.push_back("bias.npy");
  if (pruned.unit_scores.size() == 0) stale.push_back("scores.npy");
  out.commit(stale);

  if (rep.info == rcpu::Info::numerical_issue)
    std::cerr << "rcpu: warning: the compensation reported a numerical issue (see report.json)\n";
  if (rep.underdetermined)
    std::cerr << "rcpu: warning: " << rep.tokens << " calibration tokens < " << rep.kept_columns
              << " kept columns: the compensated weight is not unique (other weights fit the calibration tokens "
                 "as well); calibrate on more tokens\n";
  if (!req.quiet) {
    std::printf("rcpu prune: W %ldx%ld -> %ldx%ld, kept %zu of %ld %s, score %s, compensation %s, %ld tokens\n",
                long(W.rows()), long(W.cols()), long(pruned.weight.rows()), long(pruned.weight.cols()),
                pruned.kept_units.size(), long(units), opt.group_size > 1 ? "heads" : "channels",
                rcpu::to_string(opt.score), rcpu::to_string(opt.compensation), long(st.tokens()));
    std::printf("  calibration output error %.6g -> %.6g, cosine %.6g -> %.6g; written to %s\n",
                rep.before.relative_error, rep.after.relative_error, rep.before.cosine, rep.after.cosine,
                req.out.c_str());
  }
  return 0;
}

int cmd_prune(const std::vector<std::string>& argv) {
  const Args a(argv, prune_options, false);
  const PruneRequest req = parse_prune(a);
  rcpu::io::NpyReader w(req.weight_file);  // only the header here: choose the scalar from the dtype
  const rcpu::io::NpyHeader h = w.header();
  if (h.dtype == rcpu::io::NpyDtype::float32) return run_prune<float>(req, h);
  if (h.dtype == rcpu::io::NpyDtype::float64) return run_prune<double>(req, h);
  throw InputError("--weight " + req.weight_file + ": has dtype " + h.descr() + "; expected float32 or float64");
}

int save_stats_command(const std::vector<std::string>& acts, const std::vector<std::string>& dirs, bool diagonal,
                       const std::string& out, bool quiet, const char* name) {
  const Stats st = gather_statistics(acts, dirs, -1, diagonal ? GramPolicy::diagonal : GramPolicy::if_available);
  rcpu::io::save_statistics(out, st);
  if (!quiet)
    std::printf("rcpu %s: %ld tokens x %ld channels (%s Gram) saved to %s\n", name, long(st.tokens()),
                long(st.channels()), st.has_gram() ? "full" : "no", out.c_str());
  return 0;
}

int cmd_stats(const std::vector<std::string>& argv) {
  const Args a(argv, stats_options, false);
  if (!a.has("--out")) throw UsageError("stats needs --out");
  if (!a.has("--acts") && !a.has("--stats")) throw UsageError("stats needs --acts or --stats");
  return save_stats_command(a.values("--acts"), a.values("--stats"), a.has("--diagonal"), a.value("--out"),
                            a.has("--quiet"), "stats");
}

int cmd_merge(const std::vector<std::string>& argv) {
  const Args a(argv, merge_options, true);
  if (!a.has("--out")) throw UsageError("merge needs --out");
  if (a.positional().empty()) throw UsageError("merge needs at least one statistics directory");
  return save_stats_command({}, a.positional(), false, a.value("--out"), a.has("--quiet"), "merge");
}

int run(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(help_text, stdout);
      std::fputs(rcpu_cli::prune_model_help, stdout);
      return 0;
    }
  if (args.empty()) throw UsageError("no command given");
  if (args[0] == "--version") {
    std::printf("rcpu %d.%d.%d\n", RCPU_VERSION_MAJOR, RCPU_VERSION_MINOR, RCPU_VERSION_PATCH);
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "prune") return cmd_prune(rest);
  if (args[0] == "stats") return cmd_stats(rest);
  if (args[0] == "merge") return cmd_merge(rest);
  if (args[0] == "prune-model") return rcpu_cli::cmd_prune_model(rest);
  throw UsageError("unknown command '" + args[0] + "' (prune, stats, merge, prune-model)");
}

// One line: the library's messages are single lines already, but a path could hold a newline.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "rcpu: %s (see rcpu --help)\n", one_line(e.what()).c_str());
    return 2;
  } catch (const rcpu::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", one_line(e.what()).c_str());  // already starts with "rcpu: "
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "rcpu: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rcpu: %s\n", one_line(e.what()).c_str());
    return 1;
  }
}
