// SPDX-License-Identifier: MIT
// rcpu's demo: prune a LLaMA-style decoder block end to end and see what each compensation does.
//
// A synthetic block (RMSNorm, RoPE attention with a causal mask, SwiGLU MLP, residuals) is calibrated on
// N_cal tokens (one dense pass: statistics at the inputs of o_proj and down_proj), pruned at several
// ratios with every score and every compensation, and evaluated on held-out tokens it never saw. The
// comparison is repeated for several N_cal, to see where least squares overfits a small calibration set
// and the rotation does not. Prints tables, writes a CSV and an SVG figure.
//
// Run `rcpu_toy_transformer --help` for the options.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rcpu/kernels.hpp>  // rcpu before Eigen (rcpu/detail/intrinsics.hpp)
#include <rcpu/rcpu.hpp>

#include <Eigen/Core>

#include "svg_plot.hpp"
#include "toy_block.hpp"

#if defined(RCPU_USE_BLAS) && defined(__GNUC__)
// OpenBLAS's thread control, if the BLAS rcpu links is OpenBLAS (weak: null with any other BLAS).
extern "C" __attribute__((weak)) void openblas_set_num_threads(int);
#endif

namespace {

using rcpu::Index;
using rcpu_toy::BlockConfig;
using Mat = Eigen::MatrixXf;
using Stats = rcpu::Statistics<float>;

const char* const usage = R"(rcpu_toy_transformer: prune a toy LLaMA-style decoder block with every score and compensation

Options (defaults in brackets):
  --d-model N        hidden size [512]
  --heads N          attention heads [8]
  --kv-heads N       key/value heads; fewer than --heads is grouped-query attention [= heads]
  --mlp N            MLP channels [1376]
  --seq-len N        tokens per sequence (causal attention within a sequence) [128]
  --calib LIST       calibration sizes N_cal for the sweep, comma-separated [32,128,512,2048,8192]
  --grid-calib N     N_cal of the full comparison (every score x compensation) [2048]
  --test-tokens N    held-out tokens, never used for calibration [512]
  --ratios LIST      pruning ratios, comma-separated [0.1,0.2,0.3]
  --focus-ratio R    ratio of the detailed tables and the N_cal plot [0.3]
  --ridge-tokens T   proximal ridge strength, in pseudo-tokens (lambda = T * mean E[x^2]) [64]
  --seed N           seed of the weights and the data [1]
  --threads N        worker threads [hardware threads]
  --out DIR          write DIR/toy-transformer.csv and DIR/toy-transformer.svg [no files]
  --help             this text
)";

struct Options {
  BlockConfig block;
  std::vector<Index> calib = {32, 128, 512, 2048, 8192};
  Index grid_calib = 2048;
  Index test_tokens = 512;
  std::vector<double> ratios = {0.1, 0.2, 0.3};
  double focus_ratio = 0.3;
  double ridge_tokens = 64;
  std::uint32_t seed = 1;
  unsigned threads = 0;
  std::string out;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "rcpu_toy_transformer: %s\n", msg.c_str());
  std::exit(2);
}

double parse_number(const std::string& flag, const std::string& v) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || !std::isfinite(x)) die(flag + ": '" + v + "' is not a number");
  return x;
}

Index parse_count(const std::string& flag, const std::string& v) {
  const double x = parse_number(flag, v);
  if (x < 1 || x != std::floor(x) || x > 1e9) die(flag + ": '" + v + "' is not a positive integer");
  return Index(x);
}

template <typename T, typename F>
std::vector<T> parse_list(const std::string& flag, const std::string& v, F parse) {
  std::vector<T> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(parse(flag, item));
  if (out.empty()) die(flag + ": empty list");
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool kv_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) die("option " + a + " needs a value (see --help)");
    const std::string v = argv[++i];
    if (a == "--d-model") o.block.d_model = parse_count(a, v);
    else if (a == "--heads") o.block.n_heads = parse_count(a, v);
    else if (a == "--kv-heads") o.block.n_kv_heads = parse_count(a, v), kv_given = true;
    else if (a == "--mlp") o.block.d_mlp = parse_count(a, v);
    else if (a == "--seq-len") o.block.seq_len = parse_count(a, v);
    else if (a == "--calib") o.calib = parse_list<Index>(a, v, parse_count);
    else if (a == "--grid-calib") o.grid_calib = parse_count(a, v);
    else if (a == "--test-tokens") o.test_tokens = parse_count(a, v);
    else if (a == "--ratios") o.ratios = parse_list<double>(a, v, parse_number);
    else if (a == "--focus-ratio") o.focus_ratio = parse_number(a, v);
    else if (a == "--ridge-tokens") o.ridge_tokens = parse_number(a, v);
    else if (a == "--seed") o.seed = std::uint32_t(parse_count(a, v));
    else if (a == "--threads") o.threads = unsigned(parse_count(a, v));
    else if (a == "--out") o.out = v;
    else die("unknown option " + a + " (see --help)");
  }
  if (!kv_given) o.block.n_kv_heads = o.block.n_heads;
  try {
    o.block.validate();
  } catch (const std::exception& e) {
    die(e.what());
  }
  for (double r : o.ratios)
    if (!(r >= 0 && r < 1)) die("--ratios: " + std::to_string(r) + " is outside [0, 1)");
  if (!(o.focus_ratio >= 0 && o.focus_ratio < 1)) die("--focus-ratio must be in [0, 1)");
  if (!(o.ridge_tokens >= 0)) die("--ridge-tokens must be >= 0");
  std::sort(o.calib.begin(), o.calib.end());
  o.calib.erase(std::unique(o.calib.begin(), o.calib.end()), o.calib.end());
  if (std::find(o.ratios.begin(), o.ratios.end(), o.focus_ratio) == o.ratios.end()) o.ratios.push_back(o.focus_ratio);
  std::sort(o.ratios.begin(), o.ratios.end());
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

const std::vector<rcpu::Score> scores = {rcpu::Score::magnitude, rcpu::Score::wanda_sp, rcpu::Score::flap,
                                         rcpu::Score::rcpu};
const std::vector<rcpu::Compensation> compensations = {
    rcpu::Compensation::none,     rcpu::Compensation::bias,           rcpu::Compensation::least_squares,
    rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale,
    rcpu::Compensation::rotation_bias};

const char* score_label(rcpu::Score s) {
  switch (s) {
    case rcpu::Score::magnitude: return "magnitude";
    case rcpu::Score::wanda_sp: return "Wanda-sp";
    case rcpu::Score::flap: return "FLAP";
    case rcpu::Score::rcpu: return "RCPU";
    default: return rcpu::to_string(s);
  }
}

const char* comp_label(rcpu::Compensation c) {
  switch (c) {
    case rcpu::Compensation::none: return "none";
    case rcpu::Compensation::bias: return "FLAP bias";
    case rcpu::Compensation::least_squares: return "least squares";
    case rcpu::Compensation::proximal_ridge: return "proximal ridge";
    case rcpu::Compensation::rotation: return "rotation";
    case rcpu::Compensation::rotation_scale: return "rotation+scale";
    case rcpu::Compensation::rotation_bias: return "rotation+bias";
    case rcpu::Compensation::rotation_ridge: return "ridge to rotation";
  }
  return "?";
}

const char* comp_color(rcpu::Compensation c) {
  switch (c) {
    case rcpu::Compensation::none: return "#555555";
    case rcpu::Compensation::bias: return "#8c564b";
    case rcpu::Compensation::least_squares: return "#d62728";
    case rcpu::Compensation::proximal_ridge: return "#ff7f0e";
    case rcpu::Compensation::rotation: return "#1f77b4";
    case rcpu::Compensation::rotation_scale: return "#17becf";
    case rcpu::Compensation::rotation_bias: return "#2ca02c";
    case rcpu::Compensation::rotation_ridge: return "#9467bd";
  }
  return "black";
}

struct Task {
  Index n_cal;
  rcpu::Score score;
  double ratio;
};

struct Result {
  Task task;
  rcpu::Compensation comp;
  Index heads = 0, kv_heads = 0, channels = 0;
  rcpu_toy::Evaluation eval;
  rcpu::LayerReport o_report, down_report;
};

// One progress line on stderr, rewritten in place.
class Progress {
 public:
  Progress(std::string what, std::size_t total) : m_what(std::move(what)), m_total(total) { show(); }
  void step() {
    std::lock_guard<std::mutex> lock(m_mutex);
    ++m_done;
    show();
  }
  void finish() { std::fprintf(stderr, "\n"); }

 private:
  void show() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    std::fprintf(stderr, "\r  %-34s %4zu/%zu  %5.1f s", m_what.c_str(), m_done, m_total, s);
    std::fflush(stderr);
  }
  std::string m_what;
  std::size_t m_total, m_done = 0;
  std::mutex m_mutex;
  std::chrono::steady_clock::time_point m_start = std::chrono::steady_clock::now();
};

// Runs fn(i) for i in [0, n) on `threads` threads, in order of i as workers free up. The first
// exception thrown by fn stops the remaining work and is rethrown here.
template <typename Fn>
void parallel_for(std::size_t n, unsigned threads, Fn fn) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<std::size_t>(threads, n); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::string csv_number(double x) {
  if (!std::isfinite(x)) return "";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", x);
  return b;
}

std::string pct(double r) {
  char b[16];
  std::snprintf(b, sizeof b, "%g%%", r * 100);
  return b;
}

std::string cell(double x) {
  char b[32];
  if (!std::isfinite(x)) return "-";
  std::snprintf(b, sizeof b, x >= 100 ? "%.3g" : x >= 10 ? "%.2f" : "%.4f", x);
  return b;
}

}  // namespace

static int run(const Options& opt);

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  if (const std::string notice = rcpu::kernel_notice(); !notice.empty()) std::fprintf(stderr, "%s\n", notice.c_str());
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nrcpu_toy_transformer: %s\n", e.what());
    return 1;
  }
}

static int run(const Options& opt) {
  const BlockConfig& cfg = opt.block;
  const auto t_start = std::chrono::steady_clock::now();
  Eigen::initParallel();

  Index n_max = opt.grid_calib;
  for (Index n : opt.calib) n_max = std::max(n_max, n);
  std::vector<Index> checkpoints = opt.calib;
  checkpoints.push_back(opt.grid_calib);
  std::sort(checkpoints.begin(), checkpoints.end());
  checkpoints.erase(std::unique(checkpoints.begin(), checkpoints.end()), checkpoints.end());

  std::printf("rcpu toy transformer: d_model %ld, %ld heads (%ld KV), head_dim %ld, MLP %ld, sequences of %ld tokens\n",
              long(cfg.d_model), long(cfg.n_heads), long(cfg.n_kv_heads), long(cfg.head_dim()), long(cfg.d_mlp),
              long(cfg.seq_len));
  std::printf("calibration: up to %ld tokens; evaluation: %ld held-out tokens; seed %u; %u threads\n", long(n_max),
              long(opt.test_tokens), opt.seed, opt.threads);

  // The block and the two token sets (independent draws from one distribution).
#if defined(RCPU_USE_BLAS) && defined(__GNUC__)
  // The tasks run on our own threads; OpenBLAS threads inside each of them would only compete, and
  // one BLAS thread makes the numbers the same whatever --threads is.
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
#endif
  const rcpu_toy::Block<float> dense = rcpu_toy::make_block<float>(cfg, opt.seed);
  const rcpu_toy::HiddenStates hidden(cfg, opt.seed + 1000);
  const Mat X_cal = hidden.sample<float>(n_max, opt.seed + 2000);

  // One dense pass over the calibration sequences, in parallel, keeping the inputs of o_proj and down_proj.
  const Index n_seq = (n_max + cfg.seq_len - 1) / cfg.seq_len;
  Mat o_in(n_max, cfg.d_model), down_in(n_max, cfg.d_mlp);
  {
    // Batches of 4 sequences whatever the thread count, so that every run computes the same numbers.
    const Index per = 4;
    const std::size_t batches = std::size_t((n_seq + per - 1) / per);
    Progress prog("dense pass (calibration)", batches + 1);
    parallel_for(batches, opt.threads, [&](std::size_t b) {
      const Index r0 = Index(b) * per * cfg.seq_len, r1 = std::min(n_max, r0 + per * cfg.seq_len);
      Mat ctx, dn;
      rcpu_toy::forward(dense, Mat(X_cal.middleRows(r0, r1 - r0)), cfg.seq_len, &ctx, &dn);
      o_in.middleRows(r0, r1 - r0) = ctx;
      down_in.middleRows(r0, r1 - r0) = dn;
      prog.step();
    });
    prog.step();
    prog.finish();
  }
  // Held-out tokens: never seen by the calibration.
  const rcpu_toy::HeldOut<float> held(dense, hidden.sample<float>(opt.test_tokens, opt.seed + 3000), cfg.seq_len);

  // Statistics of the first N_cal tokens for every N_cal: stream in order, snapshot at each checkpoint.
  // Each segment between checkpoints is split among the threads and merged back in order.
  std::map<Index, std::pair<Stats, Stats>> snap;
  {
    Stats so(cfg.d_model), sd(cfg.d_mlp);
    Progress prog("statistics (o_proj, down_proj)", checkpoints.size());
    Index pos = 0;
    for (Index cp : checkpoints) {
      // Parts of at most 1024 tokens, independent of the thread count (same numbers in every run).
      const Index len = cp - pos, parts = (len + 1023) / 1024;
      std::vector<Stats> po(std::size_t(parts), Stats(cfg.d_model)), pd(std::size_t(parts), Stats(cfg.d_mlp));
      parallel_for(std::size_t(parts), opt.threads, [&](std::size_t p) {
        const Index a = pos + len * Index(p) / parts, b = pos + len * Index(p + 1) / parts;
        po[p].update(o_in.middleRows(a, b - a));
        pd[p].update(down_in.middleRows(a, b - a));
      });
      for (Index p = 0; p < parts; ++p) {
        so.merge(po[std::size_t(p)]);
        sd.merge(pd[std::size_t(p)]);
      }
      pos = cp;
      snap.emplace(cp, std::make_pair(so, sd));
      // gram() fills its upper triangle lazily: do it here, before the statistics are shared by threads.
      snap.at(cp).first.gram();
      snap.at(cp).second.gram();
      prog.step();
    }
    prog.finish();
  }

  // Every (N_cal, score, ratio) to run: the full grid at grid_calib, and the RCPU score at every N_cal.
  std::vector<Task> tasks;
  auto add_task = [&](Index n, rcpu::Score s, double r) {
    for (const Task& t : tasks)
      if (t.n_cal == n && t.score == s && t.ratio == r) return;
    tasks.push_back({n, s, r});
  };
  for (rcpu::Score s : scores)
    for (double r : opt.ratios) add_task(opt.grid_calib, s, r);
  for (Index n : opt.calib) add_task(n, rcpu::Score::rcpu, opt.focus_ratio);

  std::vector<std::vector<Result>> results(tasks.size());
  {
    Progress prog("prune + compensate + evaluate", tasks.size() * compensations.size());
    parallel_for(tasks.size(), opt.threads, [&](std::size_t i) {
      const Task& t = tasks[i];
      const auto& st = snap.at(t.n_cal);
      for (rcpu::Compensation c : compensations) {
        rcpu_toy::BlockPruneOptions po;
        po.ratio = t.ratio;
        po.score = t.score;
        po.compensation = c;
        po.ridge_tokens = opt.ridge_tokens;
        const auto pruned = rcpu_toy::prune_block(dense, st.first, st.second, po);
        Result r;
        r.task = t;
        r.comp = c;
        r.heads = Index(pruned.kept_heads.size());
        r.kv_heads = Index(pruned.kept_kv_heads.size());
        r.channels = Index(pruned.kept_channels.size());
        r.eval = rcpu_toy::evaluate(pruned, held);
        r.o_report = pruned.o_report;
        r.down_report = pruned.down_report;
        results[i].push_back(r);
        prog.step();
      }
    });
    prog.finish();
  }
  auto find = [&](Index n, rcpu::Score s, double ratio, rcpu::Compensation c) -> const Result* {
    for (std::size_t i = 0; i < tasks.size(); ++i)
      if (tasks[i].n_cal == n && tasks[i].score == s && tasks[i].ratio == ratio)
        for (const Result& r : results[i])
          if (r.comp == c) return &r;
    return nullptr;
  };

  // ---- Tables
  std::printf("\nHeld-out error of the block, ||u' - u|| / ||u|| with u = block(x) - x, after pruning heads and MLP\n"
              "channels; calibration on %ld tokens, %ld held-out tokens (lower is better)\n\n",
              long(opt.grid_calib), long(opt.test_tokens));
  std::printf("| %-10s | %-15s |", "score", "compensation");
  for (double r : opt.ratios) std::printf(" %8s |", pct(r).c_str());
  std::printf("\n|%s|%s|", std::string(12, '-').c_str(), std::string(17, '-').c_str());
  for (std::size_t i = 0; i < opt.ratios.size(); ++i) std::printf("%s|", std::string(10, '-').c_str());
  std::printf("\n");
  for (rcpu::Score s : scores)
    for (rcpu::Compensation c : compensations) {
      std::printf("| %-10s | %-15s |", c == compensations.front() ? score_label(s) : "", comp_label(c));
      for (double r : opt.ratios) {
        const Result* x = find(opt.grid_calib, s, r, c);
        std::printf(" %8s |", x ? cell(x->eval.update.relative_error).c_str() : "-");
      }
      std::printf("\n");
    }
  std::printf("\nRemoved (RCPU score):");
  for (double r : opt.ratios) {
    const Result* x = find(opt.grid_calib, rcpu::Score::rcpu, r, compensations.front());
    std::printf(" %s: %ld/%ld heads", pct(r).c_str(), long(cfg.n_heads - x->heads), long(cfg.n_heads));
    if (cfg.n_kv_heads < cfg.n_heads)
      std::printf(" (%ld/%ld KV heads)", long(cfg.n_kv_heads - x->kv_heads), long(cfg.n_kv_heads));
    std::printf(", %ld/%ld channels;", long(cfg.d_mlp - x->channels), long(cfg.d_mlp));
  }
  std::printf("\na module that loses no unit is left as it is\n");

  std::printf("\nThe RCPU score at %s, %ld calibration tokens: calibration vs held-out error of each layer, and\n"
              "the geometry of the block's update on held-out tokens\n\n",
              pct(opt.focus_ratio).c_str(), long(opt.grid_calib));
  std::printf("| %-15s | %9s | %9s | %9s | %9s | %9s | %9s | %9s | %9s |\n", "compensation", "o cal", "o test",
              "down cal", "down test", "block", "cosine", "norm", "IP dist.");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(17, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str());
  for (rcpu::Compensation c : compensations) {
    const Result* x = find(opt.grid_calib, rcpu::Score::rcpu, opt.focus_ratio, c);
    if (!x) continue;
    std::printf("| %-15s | %9s | %9s | %9s | %9s | %9s | %9s | %9s | %9s |\n", comp_label(c),
                cell(x->o_report.after.relative_error).c_str(), cell(x->eval.o_proj_error).c_str(),
                cell(x->down_report.after.relative_error).c_str(), cell(x->eval.down_error).c_str(),
                cell(x->eval.update.relative_error).c_str(), cell(x->eval.update.cosine).c_str(),
                cell(x->eval.update.norm_ratio).c_str(), cell(x->eval.update.inner_product_distortion).c_str());
  }

  std::printf("\nHeld-out error of the block vs calibration size (RCPU score, %s)\n\n", pct(opt.focus_ratio).c_str());
  std::printf("| %-15s |", "N_cal");
  for (Index n : opt.calib) std::printf(" %8ld |", long(n));
  std::printf("\n|%s|", std::string(17, '-').c_str());
  for (std::size_t i = 0; i < opt.calib.size(); ++i) std::printf("%s|", std::string(10, '-').c_str());
  std::printf("\n");
  for (rcpu::Compensation c : compensations) {
    std::printf("| %-15s |", comp_label(c));
    for (Index n : opt.calib) {
      const Result* x = find(n, rcpu::Score::rcpu, opt.focus_ratio, c);
      std::printf(" %8s |", x ? cell(x->eval.update.relative_error).c_str() : "-");
    }
    std::printf("\n");
  }
  std::printf("\ndown_proj alone, calibration error -> held-out error (RCPU score, %s)\n\n", pct(opt.focus_ratio).c_str());
  std::printf("| %-15s |", "N_cal");
  for (Index n : opt.calib) std::printf(" %16ld |", long(n));
  std::printf("\n|%s|", std::string(17, '-').c_str());
  for (std::size_t i = 0; i < opt.calib.size(); ++i) std::printf("%s|", std::string(18, '-').c_str());
  std::printf("\n");
  for (rcpu::Compensation c : compensations) {
    std::printf("| %-15s |", comp_label(c));
    for (Index n : opt.calib) {
      const Result* x = find(n, rcpu::Score::rcpu, opt.focus_ratio, c);
      std::printf(" %16s |", x ? (cell(x->down_report.after.relative_error) + " -> " + cell(x->eval.down_error)).c_str()
                                : "-");
    }
    std::printf("\n");
  }

  // ---- Files
  if (!opt.out.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.out, ec);
    const std::string csv_path = (std::filesystem::path(opt.out) / "toy-transformer.csv").string();
    std::ofstream csv(csv_path);
    if (!csv) die("cannot write " + csv_path);
    csv << "n_cal,ratio,score,compensation,heads_kept,kv_heads_kept,channels_kept,block_rel_error,block_cosine,"
           "block_norm_ratio,block_ip_distortion,output_rel_error,o_proj_test_error,down_proj_test_error,"
           "o_proj_cal_error,down_proj_cal_error,o_proj_cal_error_none,down_proj_cal_error_none,o_proj_info,"
           "down_proj_info\n";
    for (const auto& rs : results)
      for (const Result& r : rs) {
        csv << r.task.n_cal << "," << r.task.ratio << "," << rcpu::to_string(r.task.score) << ","
            << rcpu::to_string(r.comp) << "," << r.heads << "," << r.kv_heads << "," << r.channels << ","
            << csv_number(r.eval.update.relative_error) << "," << csv_number(r.eval.update.cosine) << ","
            << csv_number(r.eval.update.norm_ratio) << "," << csv_number(r.eval.update.inner_product_distortion)
            << "," << csv_number(r.eval.output_error) << "," << csv_number(r.eval.o_proj_error) << ","
            << csv_number(r.eval.down_error) << "," << csv_number(r.o_report.after.relative_error) << ","
            << csv_number(r.down_report.after.relative_error) << "," << csv_number(r.o_report.before.relative_error)
            << "," << csv_number(r.down_report.before.relative_error) << ","
            << (r.heads < cfg.n_heads ? rcpu::to_string(r.o_report.info) : "") << ","
            << rcpu::to_string(r.down_report.info) << "\n";
      }
    csv.close();

    // Figure: (a) error vs ratio per compensation (RCPU score); (b) error vs N_cal; (c) down_proj's
    // calibration vs held-out error vs N_cal for least squares, proximal ridge and the rotation.
    rcpu_toy::Panel a, b, c;
    a.title = "(a) error vs ratio, N_cal = " + std::to_string(opt.grid_calib);
    a.x_label = "pruning ratio";
    a.y_label = "held-out block error";
    a.x_ticks = opt.ratios;
    b.title = "(b) error vs calibration size, ratio " + pct(opt.focus_ratio);
    b.x_label = "calibration tokens N_cal";
    b.y_label = "held-out block error";
    b.log_x = b.log_y = true;
    b.legend = false;
    for (Index n : opt.calib) b.x_ticks.push_back(double(n));
    c.title = "(c) down_proj: held-out vs calibration (dashed)";
    c.x_label = "calibration tokens N_cal";
    c.y_label = "down_proj relative error";
    c.log_x = c.log_y = true;
    c.x_ticks = b.x_ticks;
    c.legend_corner = rcpu_toy::Panel::Corner::bottom_right;
    for (rcpu::Compensation comp : compensations) {
      rcpu_toy::Series sa{comp_label(comp), comp_color(comp), false, {}, {}}, sb = sa;
      for (double r : opt.ratios)
        if (const Result* x = find(opt.grid_calib, rcpu::Score::rcpu, r, comp)) {
          sa.x.push_back(r);
          sa.y.push_back(x->eval.update.relative_error);
        }
      for (Index n : opt.calib)
        if (const Result* x = find(n, rcpu::Score::rcpu, opt.focus_ratio, comp)) {
          sb.x.push_back(double(n));
          sb.y.push_back(x->eval.update.relative_error);
        }
      a.series.push_back(sa);
      b.series.push_back(sb);
      if (comp == rcpu::Compensation::least_squares || comp == rcpu::Compensation::proximal_ridge ||
          comp == rcpu::Compensation::rotation || comp == rcpu::Compensation::none) {
        rcpu_toy::Series held_s{comp_label(comp), comp_color(comp), false, {}, {}};
        rcpu_toy::Series cal_s{"", comp_color(comp), true, {}, {}};  // unnamed: not in the legend
        for (Index n : opt.calib)
          if (const Result* x = find(n, rcpu::Score::rcpu, opt.focus_ratio, comp)) {
            held_s.x.push_back(double(n));
            held_s.y.push_back(x->eval.down_error);
            cal_s.x.push_back(double(n));
            cal_s.y.push_back(x->down_report.after.relative_error);
          }
        c.series.push_back(held_s);
        if (comp != rcpu::Compensation::none) c.series.push_back(cal_s);
      }
    }
    const std::string svg = rcpu_toy::render_svg(
        {a, b, c},
        "Toy LLaMA block (d " + std::to_string(cfg.d_model) + ", " + std::to_string(cfg.n_heads) + " heads, MLP " +
            std::to_string(cfg.d_mlp) + "): RCPU score, every compensation, held-out tokens");
    const std::string svg_path = (std::filesystem::path(opt.out) / "toy-transformer.svg").string();
    std::ofstream f(svg_path);
    if (!f) die("cannot write " + svg_path);
    f << svg;
    std::printf("\nwrote %s and %s\n", csv_path.c_str(), svg_path.c_str());
  }
  std::printf("finished in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  return 0;
}
