// rcpu-prune-study: the RCPU paper's comparison (Table 1, Table 2 and the ablation) re-run on a real
// LLaMA-family model with rcpu::model::prune_models(), plus the studies the paper lacks (GQA rules,
// FLAP's adaptive allocation, a ridge lambda sweep chosen on held-out text, the ridge toward the
// rotation, a calibration-size sweep, distribution shift, calibration seeds, dense vs layer-by-layer
// statistics). Writes CSV files; scripts/render_results.py turns them into docs/results.md and its
// figures, and scripts/reproduce_results.sh runs both (the one command).
//
//   rcpu-prune-study --model M.gguf --text wikitext-2-raw-test.txt [--shift-text corpus.txt] --out DIR
//                    [--zeroshot-dir DATA] [--zeroshot-per-task 500] [--budget-minutes M] [--cache DIR]
//                    [--threads 2] [--calib-windows 128] [--eval-windows 0] [--side-eval-windows 48]
//                    [--val-windows 24] [--ratios 0.1,0.2,0.3] [--lambdas 0.003,0.03,0.3]
//                    [--sweep-sizes 8,...,512] [--sweep-ratio 0.2] [--seeds 1,2]
//                    [--studies main,ridge,rotation_ridge,seeds,shift,statistics,ablation,gqa,adaptive,sweep]
//                    [--ridge-ratios 0.2] [--ablation-ratios 0.2] [--seed 20251009] [--seq 128]
//                    [--chunk-windows 32] [--lockstep 4]
//                    [--statistics-methods flap,flap_alam,rcpu_rotation] [--statistics-ratios 0.2]
//
// Evaluations. The runs of the paper's tables (dense; Wanda-sp, FLAP with both statistics sources,
// RCPU score without compensation, rotation, rotation + scale, rotation + bias, the ridge and the ridge
// toward the rotation at their lambdas chosen on validation; the seeds, shift and statistics studies)
// are evaluated on every test window (--eval-windows 0 = all) and, with --zeroshot-dir, on the seven
// zero-shot tasks (rcpu/model/zeroshot.hpp; --zeroshot-per-task documents each, an evenly spaced fixed
// subset). The other runs (ablation, GQA rules, adaptive allocation, calibration sweep, and rcpu's extra
// rotation variants) on the --side-eval-windows evenly spaced test windows only; every run's perplexity
// on those side windows is in runs.csv (side_ppl), so side tables compare like with like.
//
// Resumable. Each finished run is saved in the cache folder (default OUT/cache, one JSON file per run,
// holding its definition: method, options, calibration, seed, model and text) and a later invocation
// with the same settings takes it from there instead of running it again; --budget-minutes stops
// cleanly before a run that would not finish in time. The CSV files are rewritten from every finished run
// after each run, and meta.csv says how many runs of the plan are still missing (the renderer marks them).
// Plan order: dense, then the comparison at the sweep ratio (20%), then the other ratios, then the other
// studies, so that a partial run holds the most important numbers first.
// Parallel: several processes started with the same settings share the plan through the cache folder
// (class Claims: a run is claimed before it is pruned; runs other workers hold are skipped, and the plan
// is gone through again once one of them is finished).
//
// Zero-shot outputs include, per run, the share of BoolQ documents answered "yes" (zs_boolq_yes) and, in
// comparisons.csv, the mean accuracy without BoolQ (zs_mean_no_boolq): on a small model BoolQ accuracy
// follows its yes/no bias.
//
// Ridge lambdas are swept on validation windows at the --ridge-ratios (default: every ratio; a ratio
// without a sweep takes the value chosen at the nearest swept ratio), for the ridge and, with its own
// sweep, the ridge toward the rotation: the paper's LS(lambda_best).
// The seeds study repeats FLAP, the rotation, rotation + scale and the ridge (its lambda from the main
// seed) at the sweep ratio with calibration windows drawn with each --seeds value.
//
// Protocol (METHOD.md section 5, as the issue fixes it): the WikiText-2 test split is prepared as the
// paper's evaluation does (lines joined with "\n\n") and tokenized once; its first half of tokens gives
// calibration windows (random starts, fixed seed) and validation windows (aligned, disjoint from every
// calibration window of the main seed); its second half is cut into non-overlapping windows, which are
// evaluated (all, or a fixed evenly spaced subset: the same windows for every method).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rcpu/detail/hash.hpp>
#include <rcpu/io/gguf.hpp>
#include <rcpu/io/json.hpp>
#include <rcpu/kernels.hpp>
#include <rcpu/model/bootstrap.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/tokenizer.hpp>
#include <rcpu/model/zeroshot.hpp>

#include "study_claims.hpp"

#ifdef RCPU_TOOL_OPENBLAS
extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_config(void);
#endif

namespace {

using rcpu::Index;
using rcpu::model::PipelineOptions;
using rcpu::model::PipelineResult;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "rcpu-prune-study: " << msg << "\n";
  std::exit(2);
}

using study::Claims;
using study::write_atomic;

std::vector<double> parse_list(const std::string& s, const char* name) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0') die(std::string(name) + ": cannot parse '" + item + "'");
    out.push_back(v);
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string base_name(const std::string& p) {
  const auto k = p.find_last_of('/');
  return k == std::string::npos ? p : p.substr(k + 1);
}

std::string fmt(double v, int prec = 4) {
  if (!std::isfinite(v)) return "";
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

std::string fixed(double v, int prec) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}

std::string hms(double s) {
  const long t = long(s + 0.5);
  std::ostringstream os;
  if (t >= 3600) os << t / 3600 << "h";
  os << std::setw(t >= 3600 ? 2 : 1) << std::setfill('0') << (t % 3600) / 60 << "m" << std::setw(2) << t % 60 << "s";
  return os.str();
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "n/a" : a + " " + b + " " + c;
}

double load1() {
  std::ifstream in("/proc/loadavg");
  double a = -1;
  in >> a;
  return a;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto k = line.find(':');
      return k == std::string::npos ? line : line.substr(k + 2);
    }
  return "unknown";
}

std::string mem_total() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  long kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return fixed(double(kb) / 1048576.0, 1) + " GiB";
  return "unknown";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// ------------------------------------------------------------------------------------------------
// The runs.

struct Eval {
  double ppl = NAN, nll = NAN, seconds = 0;
  Index windows = 0;
  std::vector<Index> idx;          // the windows evaluated (indices into the split's windows)
  std::vector<double> window_nll;  // their mean cross-entropies, in the same order
};

// Zero-shot outcome of one task: accuracies and, per document, whether the paper's metric counts it right.
struct TaskScore {
  std::string task;
  double acc = NAN, acc_norm = NAN, value = NAN;
  std::string correct;  // '1' / '0' per document, in the task's document order
};

struct ZeroShot {
  Index per_task = 0;
  std::string docs_hash;  // of the documents scored (zeroshot_docs_hash()): other data is never reused
  double seconds = 0;
  Index tokens = 0;
  std::vector<TaskScore> tasks;
  double mean() const {
    double s = 0;
    for (const TaskScore& t : tasks) s += t.value;
    return tasks.empty() ? NAN : s / double(tasks.size());
  }
  const TaskScore* find(const std::string& name) const {
    for (const TaskScore& t : tasks)
      if (t.task == name) return &t;
    return nullptr;
  }
};

struct Run {
  std::string key, method_id, method;
  std::set<std::string> studies;
  PipelineOptions opt;
  std::string corpus = "wikitext";
  Index calib_windows = 128;
  std::uint64_t seed = 0;
  bool want_test = true, want_val = false;
  bool full_test = false;      // every test window (else the side windows)
  bool want_zeroshot = false;  // the seven tasks (when the study has them)
  // Results.
  bool done = false, cached = false;
  Index params = 0, params_dense = 0, heads = 0, kv_heads = 0, channels = 0;
  double prune_seconds = 0, load_at_start = -1;
  Eval test, val;
  ZeroShot zs;
  std::vector<std::string> layer_lines;  // layers.csv rows without the key
};

// The methods of the comparison, by id (rcpu/model/methods.hpp). Ridge ids carry their relative
// lambda in the options.
PipelineOptions method_options(const std::string& id, double ratio, Index seq, Index chunk) {
  PipelineOptions o;
  try {
    o = rcpu::model::method_options(id, ratio);
  } catch (const rcpu::invalid_argument& e) {
    die(e.what());
  }
  o.label.clear();
  o.seq_len = seq;
  o.chunk_windows = chunk;
  return o;
}

const std::map<std::string, std::string>& method_names() {
  static const std::map<std::string, std::string> names = [] {
    std::map<std::string, std::string> m{{"dense", "dense"}};
    for (const rcpu::model::MethodPreset& p : rcpu::model::method_presets()) m.emplace(p.id, p.name);
    return m;
  }();
  return names;
}

bool is_ridge(const std::string& id) { return id == "ridge" || id == "rcpu_rotation_ridge"; }

// FNV-1a (rcpu/detail/hash.hpp): fingerprints of the model file, the text's tokens and the zero-shot
// documents that a cached run must match. Its basis is the one the cached runs were keyed with (one
// digit short of FNV's own; any basis makes a hash, and changing it would orphan every cached run).
struct Fnv : rcpu::detail::Fnv1a {
  Fnv() : rcpu::detail::Fnv1a(1469598103934665603ull) {}
};

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read " + path);
  Fnv f;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    f.add(buf.data(), std::size_t(in.gcount()));
  }
  return f.hex();
}

// The cache's format and meaning: raise it when a change makes old cached runs wrong.
constexpr int cache_version = 1;

struct Settings {
  std::string model, text, shift_text, out, cache, zeroshot_dir;
  int threads = 2;
  Index seq = 128, calib = 128, eval_windows = 0, side_eval_windows = 48, val_windows = 24, chunk = 32, lockstep = 4;
  Index zeroshot_per_task = 500;
  double budget_minutes = 0;
  std::uint64_t seed = 20251009;
  std::vector<double> ratios{0.1, 0.2, 0.3}, lambdas{3e-3, 3e-2, 3e-1}, sizes{8, 16, 32, 64, 128, 256, 512};
  std::vector<double> seeds{1, 2};  // the seeds study: calibration drawn with these seeds too
  // Empty: every ratio (ridge), the sweep ratio (ablation).
  std::vector<double> ridge_ratios, ablation_ratios;
  // The study `statistics`: these methods with both statistics sources; empty ratios: the sweep ratio.
  std::vector<std::string> statistics_methods{"flap", "flap_alam", "rcpu_rotation"};
  std::vector<double> statistics_ratios;
  double sweep_ratio = 0.2, gqa_ratio = 1.0 / 3.0;
  std::set<std::string> studies{"main",     "ridge", "rotation_ridge", "seeds", "shift", "statistics",
                                "ablation", "gqa",   "adaptive",       "sweep"};
};

std::string ratio_tag(double r) { return fixed(r * 100, 1); }

// Studies whose runs get every test window and the zero-shot tasks.
bool full_study(const std::string& s) {
  return s == "main" || s == "ridge_best" || s == "rotation_ridge_best" || s == "seeds" || s == "shift" ||
         s == "statistics";
}
// Methods of the paper's tables (the main study's other rows, rcpu's extra rotation variants, get the
// side windows only).
bool table_method(const std::string& id) {
  return id == "dense" || id == "wanda_sp" || id == "flap" || id == "rcpu_none" || id == "rcpu_rotation" ||
         id == "rcpu_rotation_scale" || id == "rcpu_rotation_bias" || is_ridge(id) || id == "flap_alam";
}

class Study {
 public:
  explicit Study(Settings s) : m_s(std::move(s)) {}
  int run();

 private:
  Run& add(const std::string& study, const std::string& method_id, double ratio, const std::string& corpus,
           Index calib, double rel_lambda = 0, const std::string& variant = "", std::uint64_t seed = 0);
  // Sets what a run is evaluated on from its studies and method.
  void set_evaluations(Run& r) const;
  // Runs a lockstep group (those of its runs the cache does not already hold, within the time budget,
  // that no other worker holds), evaluates each run, and hands each pruned model to `keep` (if set).
  // False when some run of the group is not done: the budget stopped it, or another worker has it.
  bool execute(std::vector<Run*> group,
               const std::function<void(Run&, PipelineResult&)>& keep = std::function<void(Run&, PipelineResult&)>());
  void evaluate_run(Run& r, const rcpu::model::LlamaModel& m);
  Eval evaluate(const rcpu::model::LlamaModel& m, const std::vector<std::int32_t>& tokens,
                const std::vector<Index>& windows, const std::string& what);
  ZeroShot zeroshot(const rcpu::model::LlamaModel& m, const std::string& what);
  std::vector<std::int32_t> calibration(const std::string& corpus, Index windows, std::uint64_t seed);
  void write_outputs() const;
  void write_comparisons() const;
  void progress_line(const std::string& what);
  double remaining_cost() const;
  double run_cost(const Run& r) const;
  bool over_budget(const std::vector<Run*>& group) const;
  // The cache.
  std::string definition(const Run& r) const;
  std::string cache_path(const Run& r) const;
  bool satisfied(const Run& r) const;
  bool load_cached(Run& r, bool quiet = false);
  // Claims `r` for this worker; false (and noted in m_elsewhere) when another worker holds it.
  bool claim(const Run& r);
  Index done_count() const;
  Index cached_count() const;
  void save_cached(const Run& r) const;
  double side_ppl(const Run& r) const;
  double boolq_yes(const Run& r) const;

  Settings m_s;
  rcpu::model::LlamaModel m_dense;
  rcpu::model::Tokenizer m_tok;
  std::vector<rcpu::model::ZeroShotTask> m_tasks;
  std::vector<std::int32_t> m_tokens, m_first, m_second, m_shift;
  std::map<std::uint64_t, std::vector<Index>> m_calib_starts;  // per seed
  std::vector<Index> m_shift_starts, m_test_windows, m_side_windows, m_val_windows;
  Index m_max_calib = 0, m_test_total = 0;
  std::vector<std::unique_ptr<Run>> m_runs;
  std::map<std::string, Run*> m_by_key;
  Clock::time_point m_t0;
  double m_pipe_rate = -1, m_eval_rate = -1, m_zs_rate = -1;  // s per calibration window / eval window / zero-shot
  Claims m_claims;
  std::set<std::string> m_elsewhere;  // runs of this pass that other workers hold
  bool m_stopped = false;
  std::string m_model_id, m_text_id, m_zs_hash;
};

Run& Study::add(const std::string& study, const std::string& method_id, double ratio, const std::string& corpus,
                Index calib, double rel_lambda, const std::string& variant, std::uint64_t seed) {
  if (seed == 0) seed = m_s.seed;
  std::ostringstream key;
  key << method_id << (variant.empty() ? "" : "-" + variant) << "-r" << ratio_tag(ratio) << "-" << corpus << calib;
  if (is_ridge(method_id)) key << "-a" << fmt(rel_lambda, 3);
  if (seed != m_s.seed) key << "-s" << seed;
  const std::string k = key.str();
  auto it = m_by_key.find(k);
  if (it != m_by_key.end()) {
    const Run& o = *it->second;
    if (std::abs(o.opt.ratio - ratio) > 1e-12 || std::abs(o.opt.relative_lambda - rel_lambda) > 1e-12)
      die("two runs share the key " + k + " (ratios or lambdas that differ beyond the key's digits)");
    it->second->studies.insert(study);
    set_evaluations(*it->second);
    return *it->second;
  }
  auto r = std::make_unique<Run>();
  r->key = k;
  r->method_id = method_id;
  r->method = method_names().at(method_id);
  r->studies.insert(study);
  r->opt = method_options(method_id, ratio, m_s.seq, m_s.chunk);
  r->opt.relative_lambda = rel_lambda;
  r->opt.label = k;
  r->corpus = corpus;
  r->calib_windows = calib;
  r->seed = seed;
  set_evaluations(*r);
  Run& ref = *r;
  m_by_key[k] = r.get();
  m_runs.push_back(std::move(r));
  return ref;
}

void Study::set_evaluations(Run& r) const {
  bool full = false;
  for (const std::string& s : r.studies) full = full || full_study(s);
  // The main study's extra rotation variants keep the side windows.
  if (r.studies.count("main") && !table_method(r.method_id)) {
    full = false;
    for (const std::string& s : r.studies) full = full || (s != "main" && full_study(s));
  }
  r.full_test = full;
  r.want_zeroshot = full && !m_tasks.empty();
}

std::vector<std::int32_t> Study::calibration(const std::string& corpus, Index windows, std::uint64_t seed) {
  if (corpus != "wikitext") {
    if (windows > Index(m_shift_starts.size())) die("not enough calibration windows drawn");
    return rcpu::model::gather_windows(m_shift, std::vector<Index>(m_shift_starts.begin(), m_shift_starts.begin() + windows),
                                       m_s.seq);
  }
  auto it = m_calib_starts.find(seed);
  if (it == m_calib_starts.end())
    it = m_calib_starts.emplace(seed, rcpu::model::random_windows(0, Index(m_first.size()), m_s.seq, m_max_calib, seed)).first;
  if (windows > Index(it->second.size())) die("not enough calibration windows drawn");
  return rcpu::model::gather_windows(m_tokens, std::vector<Index>(it->second.begin(), it->second.begin() + windows), m_s.seq);
}

double Study::run_cost(const Run& r) const {
  const double pipe = m_pipe_rate > 0 ? m_pipe_rate : 1.6 * (m_eval_rate > 0 ? m_eval_rate : 0.5);
  const double ev = m_eval_rate > 0 ? m_eval_rate : 0.5;
  const double zs = r.want_zeroshot ? (m_zs_rate > 0 ? m_zs_rate : 900.0) : 0.0;
  return pipe * double(r.calib_windows) + zs +
         ev * double((r.want_test ? (r.full_test ? m_test_windows.size() : m_side_windows.size()) : 0) +
                     (r.want_val ? m_val_windows.size() : 0));
}

double Study::remaining_cost() const {
  double c = 0;
  for (const auto& r : m_runs)
    if (!r->done) c += run_cost(*r);
  return c;
}

bool Study::over_budget(const std::vector<Run*>& group) const {
  if (m_s.budget_minutes <= 0) return false;
  double cost = 0;
  for (const Run* r : group) cost += run_cost(*r);
  const double elapsed = std::chrono::duration<double>(Clock::now() - m_t0).count();
  return elapsed + cost > 60.0 * m_s.budget_minutes;
}

void Study::progress_line(const std::string& what) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - m_t0).count();
  std::cerr << "[" << hms(elapsed) << " | " << done_count() << "/" << m_runs.size() << " runs done (" << cached_count()
            << " from the cache) | left ~" << hms(remaining_cost()) << " | load " << fixed(load1(), 2) << "] " << what
            << "\n"
            << std::flush;
}

Eval Study::evaluate(const rcpu::model::LlamaModel& m, const std::vector<std::int32_t>& tokens,
                     const std::vector<Index>& windows, const std::string& what) {
  rcpu::model::PerplexityOptions po;
  po.window = m_s.seq;
  po.windows = windows;
  po.batch = 8;
  const rcpu::model::PerplexityResult r = rcpu::model::perplexity(m, tokens, po);
  Eval e;
  e.ppl = r.perplexity;
  e.nll = r.mean_nll;
  e.seconds = r.seconds;
  e.windows = r.windows;
  e.idx = windows;
  e.window_nll = r.window_nll;
  const double rate = r.seconds / double(std::max<Index>(1, r.windows));
  m_eval_rate = m_eval_rate < 0 ? rate : 0.5 * (m_eval_rate + rate);
  std::cerr << "    " << what << ": ppl " << fixed(e.ppl, 3) << " on " << e.windows << " windows (" << fixed(r.seconds, 1)
            << " s, " << fixed(r.tokens_per_second, 0) << " tok/s)\n";
  return e;
}

ZeroShot Study::zeroshot(const rcpu::model::LlamaModel& m, const std::string& what) {
  ZeroShot z;
  z.per_task = m_s.zeroshot_per_task;
  z.docs_hash = m_zs_hash;
  rcpu::model::ZeroShotOptions zo;
  zo.progress = &std::cerr;
  for (const rcpu::model::ZeroShotTask& task : m_tasks) {
    const rcpu::model::ZeroShotResult r = rcpu::model::evaluate_zeroshot(m, m_tok, task, zo);
    TaskScore t;
    t.task = task.name;
    t.acc = r.acc;
    t.acc_norm = r.acc_norm;
    t.value = r.paper_value();
    for (double c : r.paper_correct()) t.correct += c > 0.5 ? '1' : '0';
    z.seconds += r.seconds;
    z.tokens += r.tokens_processed;
    z.tasks.push_back(std::move(t));
  }
  m_zs_rate = m_zs_rate < 0 ? z.seconds : 0.5 * (m_zs_rate + z.seconds);
  std::cerr << "    " << what << ": zero-shot mean " << fixed(100 * z.mean(), 2) << " (" << fixed(z.seconds, 0) << " s, "
            << fixed(double(z.tokens) / std::max(1e-9, z.seconds), 0) << " tok/s)\n";
  return z;
}

void Study::evaluate_run(Run& r, const rcpu::model::LlamaModel& m) {
  if (r.want_val) r.val = evaluate(m, m_first, m_val_windows, r.key + " [validation]");
  if (r.want_test)
    r.test = evaluate(m, m_second, r.full_test ? m_test_windows : m_side_windows, r.key + " [test]");
  if (r.want_zeroshot) r.zs = zeroshot(m, r.key);
}

bool Study::execute(std::vector<Run*> group, const std::function<void(Run&, PipelineResult&)>& keep) {
  std::vector<Run*> todo;
  for (Run* r : group) {
    set_evaluations(*r);
    if (satisfied(*r)) continue;
    if (load_cached(*r, m_claims.held_elsewhere(r->key))) {
      std::cerr << "  " << r->key << ": from the cache\n";
      continue;
    }
    todo.push_back(r);
  }
  if (todo.empty()) return true;
  if (m_stopped) return false;
  bool all = true;
  {
    std::vector<Run*> mine;
    for (Run* r : todo) {
      if (!claim(*r)) {
        all = false;
        continue;
      }
      if (load_cached(*r, true)) {  // finished by another worker since the look above
        m_claims.release(r->key);
        std::cerr << "  " << r->key << ": from the cache (another worker)\n";
        continue;
      }
      mine.push_back(r);
    }
    todo.swap(mine);
  }
  if (todo.empty()) return all;
  // The budget, for the runs this worker really has to do (claimed: given back if they do not fit).
  if (over_budget(todo)) {
    for (Run* r : todo) m_claims.release(r->key);
    m_stopped = true;
    return false;
  }
  std::vector<PipelineOptions> configs;
  std::string names;
  for (Run* r : todo) {
    configs.push_back(r->opt);
    names += (names.empty() ? "" : ", ") + r->key;
    r->load_at_start = load1();
  }
  for (const Run* r : todo)
    if (r->corpus != todo.front()->corpus || r->calib_windows != todo.front()->calib_windows || r->seed != todo.front()->seed)
      die("a lockstep group mixes calibration sets (" + r->key + ", " + todo.front()->key + ")");
  const std::vector<std::int32_t> calib = calibration(todo.front()->corpus, todo.front()->calib_windows, todo.front()->seed);
  progress_line("pruning: " + names);
  const auto t0 = Clock::now();
  const auto on_layer = [&](Index l, Index n) {
    if ((l + 1) % 10 == 0 || l + 1 == n)
      progress_line("  layer " + std::to_string(l + 1) + "/" + std::to_string(n) + " of " + names);
  };
  std::vector<PipelineResult> res = rcpu::model::prune_models(m_dense, calib, configs, nullptr, on_layer);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // Seconds per calibration window and configuration (lockstep sharing makes groups a bit cheaper).
  const double rate = secs / double(todo.front()->calib_windows * Index(todo.size()));
  m_pipe_rate = m_pipe_rate < 0 ? rate : 0.7 * m_pipe_rate + 0.3 * rate;
  for (std::size_t i = 0; i < todo.size(); ++i) {
    Run& r = *todo[i];
    PipelineResult& p = res[i];
    r.params = p.parameters;
    r.params_dense = p.parameters_dense;
    r.prune_seconds = p.seconds;
    r.heads = r.kv_heads = r.channels = 0;
    for (const auto& L : p.layers) {
      r.heads += L.heads;
      r.kv_heads += L.kv_heads;
      r.channels += L.channels;
    }
    r.layer_lines.clear();
    for (const auto& L : p.layers) {
      std::ostringstream f;
      f << L.layer << "," << L.heads << "," << L.kv_heads << "," << L.channels << "," << L.parameters << ","
        << L.attention_pruned << "," << L.mlp_pruned << "," << fmt(L.attention.before.relative_error, 6) << ","
        << fmt(L.attention.after.relative_error, 6) << "," << fmt(L.attention.after.cosine, 8) << ","
        << fmt(L.attention.after.norm_ratio, 6) << "," << fmt(L.mlp.before.relative_error, 6) << ","
        << fmt(L.mlp.after.relative_error, 6) << "," << fmt(L.mlp.after.cosine, 8) << "," << fmt(L.mlp.after.norm_ratio, 6)
        << "," << fmt(L.lambda_attention, 6) << "," << fmt(L.lambda_mlp, 6) << "," << L.det_attention << "," << L.det_mlp
        << "," << L.attention.rank_m << "," << fmt(L.attention.condition_m, 4) << "," << L.mlp.rank_m << ","
        << fmt(L.mlp.condition_m, 4) << "," << fixed(L.seconds_dense, 3) << "," << fixed(L.seconds_prune, 3) << ","
        << fixed(L.seconds_forward, 3) << "," << L.shared_with;
      r.layer_lines.push_back(f.str());
    }
    evaluate_run(r, p.model);
    r.done = true;
    r.cached = false;
    save_cached(r);
    m_claims.release(r.key);
    write_outputs();
    if (keep) keep(r, p);
  }
  return all;
}

bool Study::claim(const Run& r) {
  std::string holder;
  if (m_claims.take(r.key, &holder)) return true;
  if (!m_elsewhere.count(r.key))
    std::cerr << "  " << r.key << ": another worker is running it (" << (holder.empty() ? "a claim that changed hands" : holder)
              << "); going on\n";
  m_elsewhere.insert(r.key);
  return false;
}

Index Study::done_count() const {
  Index n = 0;
  for (const auto& r : m_runs) n += r->done ? 1 : 0;
  return n;
}

Index Study::cached_count() const {
  Index n = 0;
  for (const auto& r : m_runs) n += r->done && r->cached ? 1 : 0;
  return n;
}

// ------------------------------------------------------------------------------------------------
// The cache: one JSON file per finished run, keyed by everything that defines the run.

std::string Study::definition(const Run& r) const {
  const PipelineOptions& o = r.opt;
  std::ostringstream d;
  d << "cache_version=" << cache_version << ";model=" << m_model_id << ";text=" << m_text_id << ";seq=" << m_s.seq
    << ";method=" << r.method_id
    << ";score=" << rcpu::to_string(o.score) << ";compensation=" << rcpu::to_string(o.compensation)
    << ";ratio=" << fmt(o.ratio, 10) << ";attention_ratio=" << fmt(o.heads_ratio(), 10)
    << ";mlp_ratio=" << fmt(o.channels_ratio(), 10) << ";gqa=" << rcpu::model::to_string(o.gqa)
    << ";allocation=" << rcpu::model::to_string(o.allocation) << ";o_proj_rotation=" << rcpu::model::to_string(o.o_proj_rotation)
    << ";statistics=" << rcpu::model::to_string(o.statistics) << ";relative_lambda=" << fmt(o.relative_lambda, 10)
    << ";compensate=" << o.compensate_attention << o.compensate_mlp
    << ";proper=" << o.compensation_options.procrustes.proper_rotation << ";round_to=" << o.round_to
    << ";corpus=" << r.corpus << ";calib_windows=" << r.calib_windows << ";seed=" << r.seed;
  if (r.corpus != "wikitext") {
    Fnv f;
    f.add(m_shift.data(), m_shift.size() * sizeof(std::int32_t));
    d << ";shift=" << m_shift.size() << ":" << f.hex();
  }
  return d.str();
}

std::string Study::cache_path(const Run& r) const { return m_s.cache + "/" + r.key + ".json"; }

// Whether a finished run has every evaluation it now needs.
bool Study::satisfied(const Run& r) const {
  if (!r.done) return false;
  if (r.want_val && r.val.idx != m_val_windows) return false;
  if (r.want_test) {
    const std::vector<Index>& want = r.full_test ? m_test_windows : m_side_windows;
    // Any superset of the wanted windows will do (the side windows are a subset of all of them).
    std::set<Index> have(r.test.idx.begin(), r.test.idx.end());
    for (Index w : want)
      if (!have.count(w)) return false;
  }
  if (r.want_zeroshot) {
    if (r.zs.per_task != m_s.zeroshot_per_task || r.zs.docs_hash != m_zs_hash) return false;
    for (const auto& t : m_tasks) {
      const TaskScore* s = r.zs.find(t.name);
      if (s == nullptr || s->correct.size() != t.docs.size()) return false;
    }
  }
  return true;
}

namespace json_out {
std::string str(const std::string& s) {
  std::string o = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      o += ' ';
      continue;
    }
    o += c;
  }
  return o + "\"";
}
std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}
template <typename T>
std::string list(const std::vector<T>& v) {
  std::string o = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) o += ",";
    if constexpr (std::is_same<T, double>::value)
      o += num(v[i]);
    else
      o += std::to_string(v[i]);
  }
  return o + "]";
}
}  // namespace json_out

void Study::save_cached(const Run& r) const {
  using namespace json_out;
  std::filesystem::create_directories(m_s.cache);
  std::ostringstream f;
  const auto eval = [&](const Eval& e) {
    if (e.windows == 0) return std::string("null");
    return "{\"seconds\":" + num(e.seconds) + ",\"windows\":" + list(e.idx) + ",\"nll\":" + list(e.window_nll) + "}";
  };
  f << "{\"key\":" << str(r.key) << ",\"definition\":" << str(definition(r)) << ",\"params\":" << r.params
    << ",\"params_dense\":" << r.params_dense << ",\"heads\":" << r.heads << ",\"kv_heads\":" << r.kv_heads
    << ",\"channels\":" << r.channels << ",\"prune_seconds\":" << num(r.prune_seconds)
    << ",\"load_at_start\":" << num(r.load_at_start) << ",\n\"test\":" << eval(r.test) << ",\n\"val\":" << eval(r.val)
    << ",\n\"zeroshot\":";
  if (r.zs.tasks.empty()) {
    f << "null";
  } else {
    f << "{\"per_task\":" << r.zs.per_task << ",\"docs_hash\":" << str(r.zs.docs_hash) << ",\"seconds\":" << num(r.zs.seconds) << ",\"tokens\":" << r.zs.tokens
      << ",\"tasks\":[";
    for (std::size_t i = 0; i < r.zs.tasks.size(); ++i) {
      const TaskScore& t = r.zs.tasks[i];
      f << (i ? ",\n" : "\n") << "{\"task\":" << str(t.task) << ",\"acc\":" << num(t.acc) << ",\"acc_norm\":" << num(t.acc_norm)
        << ",\"value\":" << num(t.value) << ",\"correct\":" << str(t.correct) << "}";
    }
    f << "]}";
  }
  f << ",\n\"layers\":[";
  for (std::size_t i = 0; i < r.layer_lines.size(); ++i) f << (i ? ",\n" : "\n") << str(r.layer_lines[i]);
  f << "]}\n";
  write_atomic(cache_path(r), f.str());  // an interrupted run leaves no half file
}

bool Study::load_cached(Run& r, bool quiet) {
  const std::string path = cache_path(r);
  if (!std::ifstream(path).good()) return false;
  try {
    const rcpu::io::Json j = rcpu::io::parse_json(read_text(path));
    if (j.at("definition").as_string() != definition(r)) {
      if (!quiet)
        std::cerr << "  " << r.key << ": the cached run was made with other settings; running it again\n"
                << "    cached: " << j.at("definition").as_string() << "\n    now:    " << definition(r) << "\n";
      return false;
    }
    // Non-finite numbers were written as null (JSON has no NaN): read back as NaN.
    const auto number = [](const rcpu::io::Json& x) { return x.is_null() ? double(NAN) : x.as_number(); };
    Run c = r;  // filled, then kept only if it has what is needed
    c.params = j.at("params").as_int();
    c.params_dense = j.at("params_dense").as_int();
    c.heads = j.at("heads").as_int();
    c.kv_heads = j.at("kv_heads").as_int();
    c.channels = j.at("channels").as_int();
    c.prune_seconds = number(j.at("prune_seconds"));
    c.load_at_start = j.at("load_at_start").is_null() ? -1 : j.at("load_at_start").as_number();
    const auto eval = [&](const rcpu::io::Json& e) {
      Eval out;
      if (e.is_null()) return out;
      out.seconds = number(e.at("seconds"));
      for (const auto& w : e.at("windows").as_array()) out.idx.push_back(w.as_int());
      for (const auto& x : e.at("nll").as_array()) out.window_nll.push_back(number(x));
      out.windows = Index(out.idx.size());
      double s = 0;
      for (double x : out.window_nll) s += x;
      out.nll = out.windows > 0 ? s / double(out.windows) : NAN;
      out.ppl = std::exp(out.nll);
      return out;
    };
    c.test = eval(j.at("test"));
    c.val = eval(j.at("val"));
    c.zs = ZeroShot();
    if (!j.at("zeroshot").is_null()) {
      const auto& z = j.at("zeroshot");
      c.zs.per_task = z.at("per_task").as_int();
      c.zs.docs_hash = z.find("docs_hash") != nullptr ? z.at("docs_hash").as_string() : "";
      c.zs.seconds = number(z.at("seconds"));
      c.zs.tokens = z.at("tokens").as_int();
      for (const auto& t : z.at("tasks").as_array()) {
        TaskScore s;
        s.task = t.at("task").as_string();
        s.acc = number(t.at("acc"));
        s.acc_norm = number(t.at("acc_norm"));
        s.value = number(t.at("value"));
        s.correct = t.at("correct").as_string();
        c.zs.tasks.push_back(s);
      }
    }
    c.layer_lines.clear();
    for (const auto& l : j.at("layers").as_array()) c.layer_lines.push_back(l.as_string());
    c.done = true;
    c.cached = true;
    if (!satisfied(c)) {
      if (!quiet) std::cerr << "  " << r.key << ": cached, but without every evaluation it now needs; running it again\n";
      return false;
    }
    // Time estimates from what finished runs took, until this process has timed its own.
    if (m_pipe_rate < 0 && c.calib_windows > 0 && c.prune_seconds > 0) m_pipe_rate = c.prune_seconds / double(c.calib_windows);
    if (m_eval_rate < 0 && c.test.windows > 0 && c.test.seconds > 0) m_eval_rate = c.test.seconds / double(c.test.windows);
    if (m_zs_rate < 0 && c.zs.seconds > 0) m_zs_rate = c.zs.seconds;
    if (c.want_test) {  // exactly the windows wanted now (a cached run may have more)
      const std::vector<Index>& want = c.full_test ? m_test_windows : m_side_windows;
      std::map<Index, double> by_window;
      for (std::size_t i = 0; i < c.test.idx.size(); ++i) by_window[c.test.idx[i]] = c.test.window_nll[i];
      Eval e;
      e.seconds = c.test.seconds;
      e.idx = want;
      double sum = 0;
      for (Index w : want) {
        e.window_nll.push_back(by_window.at(w));
        sum += e.window_nll.back();
      }
      e.windows = Index(want.size());
      e.nll = sum / double(std::max<Index>(1, e.windows));
      e.ppl = std::exp(e.nll);
      c.test = std::move(e);
    }
    r = std::move(c);
    return true;
  } catch (const rcpu::invalid_argument& e) {
    std::cerr << "  " << r.key << ": unreadable cache file " << path << " (" << e.message() << "); running it again\n";
    return false;
  }
}

double Study::side_ppl(const Run& r) const {
  std::map<Index, double> by_window;
  for (std::size_t i = 0; i < r.test.idx.size(); ++i) by_window[r.test.idx[i]] = r.test.window_nll[i];
  double s = 0;
  for (Index w : m_side_windows) {
    const auto it = by_window.find(w);
    if (it == by_window.end()) return NAN;
    s += it->second;
  }
  return m_side_windows.empty() ? NAN : std::exp(s / double(m_side_windows.size()));
}

// ------------------------------------------------------------------------------------------------
// Outputs, rewritten from every finished run.

// The fraction of BoolQ documents a run answers "yes" (a two-choice task: a wrong answer is the other
// choice). On a small model BoolQ accuracy mostly measures this bias, which the page has to show.
double Study::boolq_yes(const Run& r) const {
  const TaskScore* s = r.zs.find("boolq");
  const auto task = std::find_if(m_tasks.begin(), m_tasks.end(), [](const auto& t) { return t.name == "boolq"; });
  if (s == nullptr || task == m_tasks.end() || s->correct.size() != task->docs.size() || task->docs.empty()) return NAN;
  Index yes = 0;
  for (std::size_t i = 0; i < task->docs.size(); ++i) {
    const rcpu::model::ZeroShotDoc& d = task->docs[i];
    if (d.choices.size() != 2) return NAN;
    const Index answer = s->correct[i] == '1' ? d.gold : 1 - d.gold;
    yes += d.choices[std::size_t(answer)] == "yes" ? 1 : 0;
  }
  return double(yes) / double(task->docs.size());
}

void Study::write_outputs() const {
  {
    std::ostringstream f;
    f << "key,studies,method_id,method,score,compensation,ratio,attention_ratio,mlp_ratio,gqa,allocation,o_proj_rotation,"
         "statistics,relative_lambda,compensate_attention,compensate_mlp,proper_rotation,calib_corpus,calib_windows,seed,"
         "params,params_dense,heads,kv_heads,channels,prune_seconds,load_at_start,test_ppl,test_nll,test_windows,"
         "test_seconds,side_ppl,val_ppl,val_nll,val_windows,val_seconds,zs_docs,zs_mean,zs_seconds";
    for (const auto& t : rcpu::model::zeroshot_tasks()) f << ",zs_" << t.name << ",zs_" << t.name << "_acc,zs_" << t.name << "_acc_norm";
    f << ",zs_boolq_yes\n";
    for (const auto& rp : m_runs) {
      const Run& r = *rp;
      if (!r.done) continue;
      std::string studies;
      for (const auto& s : r.studies) studies += (studies.empty() ? "" : ";") + s;
      const PipelineOptions& o = r.opt;
      Index zs_docs = 0;
      for (const TaskScore& t : r.zs.tasks) zs_docs += Index(t.correct.size());
      f << r.key << "," << studies << "," << r.method_id << ",\"" << r.method << "\"," << rcpu::to_string(o.score) << ","
        << rcpu::to_string(o.compensation) << "," << fmt(o.ratio, 6) << "," << fmt(o.heads_ratio(), 6) << ","
        << fmt(o.channels_ratio(), 6) << "," << rcpu::model::to_string(o.gqa) << "," << rcpu::model::to_string(o.allocation)
        << "," << rcpu::model::to_string(o.o_proj_rotation) << "," << rcpu::model::to_string(o.statistics) << ","
        << fmt(o.relative_lambda, 6) << "," << o.compensate_attention << "," << o.compensate_mlp << ","
        << o.compensation_options.procrustes.proper_rotation << "," << r.corpus << "," << r.calib_windows << ","
        << r.seed << "," << r.params << "," << r.params_dense << "," << r.heads << "," << r.kv_heads << "," << r.channels
        << "," << fixed(r.prune_seconds, 2) << "," << fixed(r.load_at_start, 2) << "," << fmt(r.test.ppl, 8) << ","
        << fmt(r.test.nll, 10) << "," << r.test.windows << "," << fixed(r.test.seconds, 2) << "," << fmt(side_ppl(r), 8)
        << "," << fmt(r.val.ppl, 8) << "," << fmt(r.val.nll, 10) << "," << r.val.windows << "," << fixed(r.val.seconds, 2)
        << "," << zs_docs << "," << fmt(r.zs.mean(), 8) << "," << fixed(r.zs.seconds, 1);
      for (const auto& t : rcpu::model::zeroshot_tasks()) {
        const TaskScore* s = r.zs.find(t.name);
        f << "," << (s ? fmt(s->value, 8) : "") << "," << (s ? fmt(s->acc, 8) : "") << "," << (s ? fmt(s->acc_norm, 8) : "");
      }
      f << "," << fmt(boolq_yes(r), 8) << "\n";
    }
    write_atomic(m_s.out + "/runs.csv", f.str());
  }
  {
    std::ostringstream f;
    f << "key,layer,heads,kv_heads,channels,params,attention_pruned,mlp_pruned,attn_err_before,attn_err_after,"
         "attn_cos_after,attn_norm_ratio_after,mlp_err_before,mlp_err_after,mlp_cos_after,mlp_norm_ratio_after,"
         "lambda_attention,lambda_mlp,det_attention,det_mlp,rank_m_attention,cond_m_attention,rank_m_mlp,cond_m_mlp,"
         "seconds_dense,seconds_prune,seconds_forward,shared_with\n";
    for (const auto& rp : m_runs)
      if (rp->done)
        for (const std::string& l : rp->layer_lines) f << rp->key << "," << l << "\n";
    write_atomic(m_s.out + "/layers.csv", f.str());
  }
  {
    std::ostringstream f;
    f << "key,split,window,nll\n";
    for (const auto& rp : m_runs) {
      if (!rp->done) continue;
      const auto put = [&](const Eval& e, const char* split) {
        for (std::size_t i = 0; i < e.window_nll.size(); ++i)
          f << rp->key << "," << split << "," << e.idx[i] << "," << fmt(e.window_nll[i], 10) << "\n";
      };
      put(rp->test, "test");
      put(rp->val, "val");
    }
    write_atomic(m_s.out + "/window_nll.csv", f.str());
  }
}

// Paired bootstrap intervals (rcpu/model/bootstrap.hpp) for the claims of the renderer: each method of
// the main table against FLAP and against the rotation (the ridge toward the rotation also against the
// ridge), at every ratio, on the mean zero-shot accuracy (documents resampled within each task), on each
// task, and on the perplexity ratio (windows resampled); also each method of the statistics study with
// dense statistics against itself with layer-by-layer ones, and the ablation's one-module rotations
// against the rotation of both (on the windows both have: the ablation's are the side windows). The
// seeds' runs are not compared: their spread is reported instead.
void Study::write_comparisons() const {
  std::ostringstream f;
  f << "ratio,method_key,baseline_key,metric,estimate,lo,hi,n\n";
  rcpu::model::BootstrapOptions bo;
  // full: only a run scored on every test window (the ablation's runs have the side windows).
  const auto main_run = [&](const std::string& id, double ratio, const std::string& variant = "",
                            bool full = true) -> const Run* {
    const rcpu::model::Allocation allocation = rcpu::model::method_options(id, ratio).allocation;  // AL-AM ids
    for (const auto& rp : m_runs) {
      const Run& r = *rp;
      if (!r.done || r.method_id != id || std::abs(r.opt.ratio - ratio) > 1e-12 || r.corpus != "wikitext" ||
          r.calib_windows != m_s.calib || r.seed != m_s.seed || (full && !r.full_test))
        continue;
      const bool dense_stats = r.opt.statistics == rcpu::model::StatisticsSource::dense;
      if (dense_stats != (variant == "dense")) continue;
      if (is_ridge(id) && !(r.studies.count("ridge_best") || r.studies.count("rotation_ridge_best"))) continue;
      if (r.opt.gqa != rcpu::model::GqaRule::query_heads || r.opt.allocation != allocation) continue;
      return &r;
    }
    return nullptr;
  };
  const auto compare = [&](double ratio, const Run& a, const Run& b) {
    // Perplexity ratio over the windows both have.
    std::map<Index, double> nb;
    for (std::size_t i = 0; i < b.test.idx.size(); ++i) nb[b.test.idx[i]] = b.test.window_nll[i];
    std::vector<double> xa, xb;
    for (std::size_t i = 0; i < a.test.idx.size(); ++i) {
      const auto it = nb.find(a.test.idx[i]);
      if (it != nb.end()) {
        xa.push_back(a.test.window_nll[i]);
        xb.push_back(it->second);
      }
    }
    const auto finite = [](const std::vector<double>& v) {
      return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
    };
    const auto put = [&](const std::string& metric, const rcpu::model::Interval& iv, std::size_t n) {
      f << fmt(ratio, 6) << "," << a.key << "," << b.key << "," << metric << "," << fmt(iv.estimate, 8) << ","
        << fmt(iv.lo, 8) << "," << fmt(iv.hi, 8) << "," << n << "\n";
    };
    // A diverged run (non-finite losses) gets no interval: its perplexity says enough.
    if (xa.size() >= 2 && finite(xa) && finite(xb)) put("ppl_ratio", rcpu::model::perplexity_ratio(xa, xb, bo), xa.size());
    // Per task (method, baseline) correctness; `rest`: the tasks other than BoolQ, whose accuracy on a
    // small model mostly follows its yes/no bias.
    std::vector<std::pair<std::vector<double>, std::vector<double>>> tasks, rest;
    std::size_t docs = 0, rest_docs = 0;
    for (const TaskScore& ta : a.zs.tasks) {
      const TaskScore* tb = b.zs.find(ta.task);
      if (tb == nullptr || tb->correct.size() != ta.correct.size() || ta.correct.empty()) continue;
      std::vector<double> va, vb;
      for (char c : ta.correct) va.push_back(c == '1' ? 1.0 : 0.0);
      for (char c : tb->correct) vb.push_back(c == '1' ? 1.0 : 0.0);
      put("zs_" + ta.task, rcpu::model::paired_mean_difference(va, vb, bo), va.size());
      docs += va.size();
      if (ta.task != "boolq") {
        rest.emplace_back(va, vb);
        rest_docs += va.size();
      }
      tasks.emplace_back(std::move(va), std::move(vb));
    }
    if (tasks.size() == rcpu::model::zeroshot_tasks().size()) {
      put("zs_mean", rcpu::model::stratified_mean_difference(tasks, bo), docs);
      if (rest.size() + 1 == tasks.size()) put("zs_mean_no_boolq", rcpu::model::stratified_mean_difference(rest, bo), rest_docs);
    }
  };
  std::set<std::pair<std::string, std::string>> compared;  // (method key, baseline key), each pair once
  const auto compare_once = [&](double ratio, const Run* a, const Run* b) {
    if (a != nullptr && b != nullptr && a != b && compared.insert({a->key, b->key}).second) compare(ratio, *a, *b);
  };
  std::set<double> ratios(m_s.ratios.begin(), m_s.ratios.end());
  ratios.insert(m_s.statistics_ratios.begin(), m_s.statistics_ratios.end());
  ratios.insert(m_s.ablation_ratios.begin(), m_s.ablation_ratios.end());
  ratios.insert(m_s.sweep_ratio);  // the default ratio of the statistics study and the ablation
  for (double ratio : ratios) {
    const Run* flap = main_run("flap", ratio);
    const Run* rot = main_run("rcpu_rotation", ratio);
    std::vector<std::pair<std::string, std::string>> methods = {
        {"wanda_sp", ""},  {"flap", ""},          {"flap", "dense"},           {"rcpu_none", ""},   {"rcpu_rotation", ""},
        {"rcpu_rotation_scale", ""}, {"rcpu_rotation_bias", ""}, {"ridge", ""}, {"rcpu_rotation_ridge", ""}};
    for (const std::string& id : m_s.statistics_methods) {
      methods.emplace_back(rcpu::model::method_id(id), "");
      methods.emplace_back(rcpu::model::method_id(id), "dense");
    }
    for (const auto& [id, variant] : methods) {
      const Run* m = main_run(id, ratio, variant);
      compare_once(ratio, m, flap);
      compare_once(ratio, m, rot);
      // The ridge toward the rotation also against the ridge it modifies.
      if (id == "rcpu_rotation_ridge") compare_once(ratio, m, main_run("ridge", ratio));
      // Dense statistics against the same method layer by layer.
      if (variant == "dense") compare_once(ratio, m, main_run(id, ratio));
    }
    for (const char* id : {"rcpu_rotation_o_only", "rcpu_rotation_down_only"})
      compare_once(ratio, main_run(id, ratio, "", false), rot);
  }
  write_atomic(m_s.out + "/comparisons.csv", f.str());
}

// ------------------------------------------------------------------------------------------------

int Study::run() {
  m_t0 = Clock::now();
  const std::string load_start = loadavg();
  if (m_s.cache.empty()) m_s.cache = m_s.out + "/cache";
  // Model and text.
  std::cerr << "rcpu-prune-study: loading " << m_s.model << "\n";
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(m_s.model);
  m_tok = rcpu::model::Tokenizer::from_gguf(file);
  m_dense = rcpu::model::LlamaModel::from_gguf(file);
  m_model_id = base_name(m_s.model) + ":" + std::to_string(std::filesystem::file_size(m_s.model)) + ":" +
               file_fingerprint(m_s.model);
  const auto& c = m_dense.config();
  m_tokens = m_tok.encode(rcpu::model::wikitext_protocol_text(read_text(m_s.text)));
  {
    Fnv f;
    f.add(m_tokens.data(), m_tokens.size() * sizeof(std::int32_t));
    m_text_id = std::to_string(m_tokens.size()) + ":" + f.hex();
  }
  const Index n = Index(m_tokens.size()), half = n / 2;
  m_first.assign(m_tokens.begin(), m_tokens.begin() + half);
  m_second.assign(m_tokens.begin() + half, m_tokens.end());
  std::cerr << "  " << c.n_layers << " layers, d " << c.d_model << ", heads " << c.n_heads << "/" << c.n_kv_heads
            << ", head_dim " << c.head_dim << ", ffn " << c.ffn << ", vocab " << c.vocab << "; text: " << n
            << " tokens, halves of " << half << " and " << n - half << "\n";
  if (!m_s.zeroshot_dir.empty()) {
    for (const auto& t : rcpu::model::zeroshot_tasks())
      m_tasks.push_back(rcpu::model::load_zeroshot_task(t.name, m_s.zeroshot_dir + "/" + t.name + ".jsonl",
                                                        m_s.zeroshot_per_task));
    Index docs = 0;
    Fnv f;  // the documents as scored: ids, gold, every request's text
    for (const auto& t : m_tasks) {
      docs += Index(t.docs.size());
      f.add(t.name);
      for (const auto& d : t.docs) {
        f.add(std::to_string(d.doc_id) + ":" + std::to_string(d.gold));
        for (const auto& q : d.requests) {
          f.add(q.context);
          f.add(q.continuation);
        }
      }
    }
    m_zs_hash = f.hex();
    std::cerr << "  zero-shot: " << docs << " documents of " << m_tasks.size() << " tasks (at most "
              << m_s.zeroshot_per_task << " each) from " << m_s.zeroshot_dir << " (documents' hash " << m_zs_hash << ")\n";
  }

  // Windows. Calibration: the largest set the sweep study would need, whether it runs now or not (the
  // validation windows avoid all of them, so they do not depend on --studies), nested (the first N
  // windows are the set of size N).
  m_max_calib = m_s.calib;
  for (double s : m_s.sizes) m_max_calib = std::max(m_max_calib, Index(s));
  const std::vector<Index>& main_starts = m_calib_starts[m_s.seed] =
      rcpu::model::random_windows(0, half, m_s.seq, m_max_calib, m_s.seed);
  // Validation: aligned windows of the first half that touch no calibration window, evenly spaced.
  std::vector<char> touched(std::size_t(half / m_s.seq), 0);
  for (Index s : main_starts)
    for (Index w = s / m_s.seq; w <= (s + m_s.seq - 1) / m_s.seq && w < Index(touched.size()); ++w) touched[std::size_t(w)] = 1;
  std::vector<Index> free_windows;
  for (Index w = 0; w < Index(touched.size()); ++w)
    if (!touched[std::size_t(w)]) free_windows.push_back(w);
  for (Index i : rcpu::model::evenly_spaced_windows(Index(free_windows.size()), m_s.val_windows))
    m_val_windows.push_back(free_windows[std::size_t(i)]);
  m_test_total = rcpu::model::count_windows(n - half, m_s.seq);
  m_test_windows = rcpu::model::evenly_spaced_windows(m_test_total, m_s.eval_windows > 0 ? m_s.eval_windows : m_test_total);
  // The side windows: an evenly spaced subset of the test windows (with every window tested, windows
  // i * total / n of the split).
  for (Index i : rcpu::model::evenly_spaced_windows(Index(m_test_windows.size()), m_s.side_eval_windows))
    m_side_windows.push_back(m_test_windows[std::size_t(i)]);
  if (m_s.studies.count("shift")) {
    if (m_s.shift_text.empty()) die("the shift study needs --shift-text (or leave it out of --studies)");
    m_shift = m_tok.encode(read_text(m_s.shift_text));
    m_shift_starts = rcpu::model::random_windows(0, Index(m_shift.size()), m_s.seq, m_s.calib, m_s.seed + 1);
    std::cerr << "  shift corpus: " << m_shift.size() << " tokens\n";
  }
  std::cerr << "  calibration: " << m_max_calib << " random windows of " << m_s.seq << " (seed " << m_s.seed
            << ") in the first half; validation: " << m_val_windows.size() << " of " << free_windows.size()
            << " free aligned windows; test: " << m_test_windows.size() << " of " << m_test_total
            << " windows of the second half (side studies: " << m_side_windows.size() << ")\n";

  // The plan, most important first (a run with a time budget may stop part way).
  const auto want = [&](const char* s) { return m_s.studies.count(s) > 0; };
  const Index N0 = m_s.calib;
  const auto among = [](const std::vector<double>& v, double r) {
    return std::any_of(v.begin(), v.end(), [r](double x) { return std::abs(x - r) < 1e-12; });
  };
  // Ridge lambdas are chosen at every ratio of the comparison unless --ridge-ratios says otherwise.
  const std::vector<double> ridge_ratios = m_s.ridge_ratios.empty() ? m_s.ratios : m_s.ridge_ratios;
  const std::vector<double> ablation_ratios =
      m_s.ablation_ratios.empty() ? std::vector<double>{m_s.sweep_ratio} : m_s.ablation_ratios;
  // Ratios in plan order: the sweep ratio first.
  std::vector<double> ratios = m_s.ratios;
  std::stable_sort(ratios.begin(), ratios.end(), [&](double a, double b) {
    return (std::abs(a - m_s.sweep_ratio) < 1e-12) > (std::abs(b - m_s.sweep_ratio) < 1e-12);
  });

  // Dense reference.
  Run& dense = *m_runs.emplace_back(std::make_unique<Run>());
  dense.key = "dense";
  dense.method_id = "dense";
  dense.method = "dense";
  dense.studies = {"main"};
  dense.opt.ratio = 0;
  dense.opt.compensation = rcpu::Compensation::none;
  dense.calib_windows = 0;
  dense.seed = m_s.seed;
  dense.want_val = true;
  set_evaluations(dense);
  m_by_key["dense"] = &dense;
  m_claims.set_dir(m_s.cache);
  const auto run_dense = [&] {
    if (dense.done) return;
    if (load_cached(dense, m_claims.held_elsewhere(dense.key))) {
      std::cerr << "  dense: from the cache\n";
      return;
    }
    if (m_stopped || !claim(dense)) return;
    if (load_cached(dense, true)) {
      m_claims.release(dense.key);
      return;
    }
    if (over_budget({&dense})) {
      m_claims.release(dense.key);
      m_stopped = true;
      std::cerr << "rcpu-prune-study: the dense run does not fit in --budget-minutes\n";
      return;
    }
    dense.params = dense.params_dense = m_dense.parameter_count();
    dense.heads = c.n_heads * c.n_layers;
    dense.kv_heads = c.n_kv_heads * c.n_layers;
    dense.channels = c.ffn * c.n_layers;
    progress_line("dense model");
    evaluate_run(dense, m_dense);
    dense.done = true;
    save_cached(dense);
    m_claims.release(dense.key);
    write_outputs();
  };

  // Ridge sweeps (validation only) at the ridge ratios, and the sweep ratio where the calibration or shift
  // study needs it; then the best lambda's run with every evaluation. choose_lambda does this for one
  // sweep and returns the best relative lambda per swept ratio (none where the budget stopped it).
  const auto sweep_of = [&](const char* study, const char* id, bool needed) {
    std::map<double, std::vector<Run*>> sweep;
    if (!needed) return sweep;
    for (double r : ratios)
      if (((want(study) || want("main")) && among(ridge_ratios, r)) ||
          (std::string(id) == "ridge" && (want("sweep") || want("shift") || want("seeds")) && r == m_s.sweep_ratio))
        for (double a : m_s.lambdas) {
          Run& run = add(study, id, r, "wikitext", N0, a);
          run.want_test = false;
          run.want_val = true;
          sweep[r].push_back(&run);
        }
    return sweep;
  };
  const auto choose_lambda = [&](std::map<double, std::vector<Run*>>& sweep, const char* what,
                                 const std::vector<const char*>& best_studies) {
    std::map<double, double> chosen;
    for (auto& [ratio, runs] : sweep) {
      Run* best = nullptr;
      rcpu::model::LlamaModel best_model;  // the pruned model of `model_of`, kept to evaluate the best one
      const Run* model_of = nullptr;
      // A NaN validation loss never wins; anything finite beats it.
      const auto better = [](const Run* a, const Run* b) {
        return b == nullptr || (std::isnan(b->val.nll) && !std::isnan(a->val.nll)) || a->val.nll < b->val.nll;
      };
      bool complete = true;
      for (Run* r : runs) {
        const bool ran = execute({r}, [&](Run& run, PipelineResult& p) {
          if (better(&run, best)) {
            best_model = std::move(p.model);
            model_of = &run;
          }
        });
        complete = complete && ran;
        if (r->done && better(r, best)) best = r;
      }
      if (!complete || best == nullptr) continue;
      chosen[ratio] = best->opt.relative_lambda;
      std::cerr << "  " << what << " at ratio " << ratio << ": best relative lambda " << best->opt.relative_lambda
                << " (validation ppl " << fixed(best->val.ppl, 3) << ")\n";
      const std::set<std::string> studies_before = best->studies;
      for (const char* s : best_studies) best->studies.insert(s);
      best->want_test = true;
      set_evaluations(*best);
      // Evaluated already, or by another worker; else the kept model is evaluated, or the run pruned
      // again with every evaluation (execute: false when the budget or another worker stops it).
      bool evaluated = satisfied(*best) || load_cached(*best, true);
      if (!evaluated && model_of == best) {
        if (!m_stopped && claim(*best)) {
          if (load_cached(*best, true)) {
            evaluated = true;
          } else if (over_budget({best})) {
            m_stopped = true;
          } else {
            evaluate_run(*best, best_model);
            save_cached(*best);
            evaluated = true;
          }
          m_claims.release(best->key);
          write_outputs();
        }
      } else if (!evaluated) {
        evaluated = execute({best});
      }
      if (!evaluated) {  // until then a validation-only run of the sweep
        best->studies = studies_before;
        best->want_test = false;
        set_evaluations(*best);
      }
    }
    return chosen;
  };
  const auto nearest_lambda = [](const std::map<double, double>& chosen, double r) {
    double near = chosen.begin()->first;
    for (const auto& [rr, a] : chosen)
      if (std::abs(rr - r) < std::abs(near - r)) near = rr;
    return chosen.at(near);
  };
  const auto group_of = [](std::vector<Run*> g) {
    std::vector<Run*> out;
    for (Run* r : g)
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
    return out;
  };
  const auto run_groups = [&](std::vector<std::vector<Run*>> groups) {
    for (auto& g : groups)
      for (std::size_t i = 0; i < g.size(); i += std::size_t(m_s.lockstep))
        execute(std::vector<Run*>(g.begin() + long(i), g.begin() + long(std::min(g.size(), i + std::size_t(m_s.lockstep)))));
  };

  std::map<double, double> best_lambda, best_rr_lambda;
  // The plan, pass after pass: a pass skips the runs other workers hold (and the lambda choices that need
  // them); the next one, once one of those is finished, takes them from the cache.
  const auto plan_pass = [&] {
    run_dense();
    auto ridge_sweep = sweep_of("ridge", "ridge", want("ridge") || want("main") || want("sweep") || want("shift") || want("seeds"));
    auto rotation_ridge_sweep = sweep_of("rotation_ridge", "rcpu_rotation_ridge", want("rotation_ridge"));
    for (double r : ratios) {
      // The comparison at this ratio (the paper's tables), then its ridge lambdas.
      std::vector<std::vector<Run*>> groups;
      if (want("main")) {
        for (const char* id : {"flap", "wanda_sp", "rcpu_rotation_scale", "rcpu_rotation_bias"})
          groups.push_back({&add("main", id, r, "wikitext", N0)});
        Run& flap_dense = add("main", "flap", r, "wikitext", N0, 0, "dense");
        flap_dense.opt.statistics = rcpu::model::StatisticsSource::dense;
        groups.push_back({&flap_dense});
        groups.push_back({&add("main", "rcpu_rotation", r, "wikitext", N0), &add("main", "rcpu_none", r, "wikitext", N0)});
      }
      run_groups(groups);
      std::map<double, std::vector<Run*>> one;
      if (ridge_sweep.count(r)) {
        one = {{r, ridge_sweep[r]}};
        for (auto& [rr, a] : choose_lambda(one, "ridge", {"main", "ridge_best"})) best_lambda[rr] = a;
      }
      if (rotation_ridge_sweep.count(r)) {
        one = {{r, rotation_ridge_sweep[r]}};
        for (auto& [rr, a] : choose_lambda(one, "ridge toward the rotation", {"main", "rotation_ridge_best"}))
          best_rr_lambda[rr] = a;
      }
    }
    // Ratios without a sweep of their own take the lambda chosen at the nearest swept ratio, once every
    // sweep has chosen (a sweep another worker has not finished yet is taken up in the next pass).
    for (double r : ratios) {
      if (want("main") && !ridge_sweep.count(r) && !best_lambda.empty() && best_lambda.size() == ridge_sweep.size()) {
        Run& run = add("main", "ridge", r, "wikitext", N0, nearest_lambda(best_lambda, r));
        run.studies.insert("ridge_best");
        run.want_test = true;
        run_groups({{&run}});
      }
      if (want("rotation_ridge") && !rotation_ridge_sweep.count(r) && !best_rr_lambda.empty() &&
          best_rr_lambda.size() == rotation_ridge_sweep.size()) {
        Run& run = add("main", "rcpu_rotation_ridge", r, "wikitext", N0, nearest_lambda(best_rr_lambda, r));
        run.studies.insert("rotation_ridge");
        run.studies.insert("rotation_ridge_best");
        run.want_test = true;
        run_groups({{&run}});
      }
    }
    // The other studies, in order of what the page needs most.
    std::vector<std::vector<Run*>> groups;
    if (want("seeds"))
      for (double sd : m_s.seeds) {
        const std::uint64_t seed = std::uint64_t(sd);
        std::vector<Run*> g;
        for (const char* id : {"flap", "rcpu_rotation", "rcpu_rotation_scale"})
          g.push_back(&add("seeds", id, m_s.sweep_ratio, "wikitext", N0, 0, "", seed));
        groups.push_back(g);
        if (best_lambda.count(m_s.sweep_ratio))
          groups.push_back({&add("seeds", "ridge", m_s.sweep_ratio, "wikitext", N0, best_lambda[m_s.sweep_ratio], "", seed)});
      }
    if (want("shift")) {
      for (const char* id : {"flap", "rcpu_none", "rcpu_rotation"}) groups.push_back({&add("shift", id, m_s.sweep_ratio, "pydoc", N0)});
      if (best_lambda.count(m_s.sweep_ratio))
        groups.push_back({&add("shift", "ridge", m_s.sweep_ratio, "pydoc", N0, best_lambda[m_s.sweep_ratio])});
    }
    if (want("statistics")) {
      const std::vector<double> stat_ratios =
          m_s.statistics_ratios.empty() ? std::vector<double>{m_s.sweep_ratio} : m_s.statistics_ratios;
      for (double r : stat_ratios) {
        std::vector<Run*> dense_stats, pruned_stats;
        for (const std::string& id : m_s.statistics_methods) {
          try {
            (void)rcpu::model::method_name(id);
          } catch (const rcpu::invalid_argument& e) {
            die(std::string("--statistics-methods: ") + e.what());
          }
          if (is_ridge(rcpu::model::method_id(id))) die("--statistics-methods: ridge methods need a lambda sweep; not supported");
          pruned_stats.push_back(&add("statistics", rcpu::model::method_id(id), r, "wikitext", N0));
          Run& run = add("statistics", rcpu::model::method_id(id), r, "wikitext", N0, 0, "dense");
          run.opt.statistics = rcpu::model::StatisticsSource::dense;
          dense_stats.push_back(&run);
        }
        groups.push_back(group_of(dense_stats));
        groups.push_back(group_of(pruned_stats));
      }
    }
    if (want("main") || want("ablation"))
      for (double r : ratios) {
        std::vector<Run*> rot, none;
        if (want("main"))
          for (const char* id : {"rcpu_rotation", "rcpu_rotation_proper", "rcpu_rotation_per_head"})
            rot.push_back(&add("main", id, r, "wikitext", N0));
        if (want("ablation") && among(ablation_ratios, r)) {
          rot.push_back(&add("ablation", "rcpu_rotation", r, "wikitext", N0));
          rot.push_back(&add("ablation", "rcpu_rotation_down_only", r, "wikitext", N0));
          none.push_back(&add("ablation", "rcpu_none", r, "wikitext", N0));
          none.push_back(&add("ablation", "rcpu_rotation_o_only", r, "wikitext", N0));
        }
        groups.push_back(group_of(rot));
        groups.push_back(group_of(none));
      }
    if (want("adaptive"))  // at the sweep ratio only (time)
      for (double r : {m_s.sweep_ratio}) {
        groups.push_back({&add("adaptive", "flap_alam", r, "wikitext", N0)});
        groups.push_back({&add("adaptive", "rcpu_rotation_alam", r, "wikitext", N0)});
      }
    if (want("gqa"))
      for (rcpu::model::GqaRule rule : {rcpu::model::GqaRule::query_heads, rcpu::model::GqaRule::kv_groups,
                                        rcpu::model::GqaRule::balanced}) {
        Run& run = add("gqa", "rcpu_rotation", m_s.gqa_ratio, "wikitext", N0, 0, std::string("attn-") + rcpu::model::to_string(rule));
        run.opt.gqa = rule;
        run.opt.attention_ratio = m_s.gqa_ratio;
        run.opt.mlp_ratio = 0.0;
        groups.push_back({&run});
      }
    if (want("sweep"))
      for (double s : m_s.sizes) {
        groups.push_back({&add("sweep", "rcpu_rotation", m_s.sweep_ratio, "wikitext", Index(s))});
        if (best_lambda.count(m_s.sweep_ratio))
          groups.push_back({&add("sweep", "ridge", m_s.sweep_ratio, "wikitext", Index(s), best_lambda[m_s.sweep_ratio])});
      }
    run_groups(groups);
  };
  for (;;) {
    m_elsewhere.clear();
    plan_pass();
    if (m_stopped || m_elsewhere.empty()) break;
    // Wait until one of the runs other workers hold is finished (or its worker is gone).
    progress_line("waiting for " + std::to_string(m_elsewhere.size()) + " run(s) of other workers, e.g. " +
                  *m_elsewhere.begin());
    for (bool free = false; !free;) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      for (const std::string& k : m_elsewhere) free = free || !m_claims.held_elsewhere(k);
      const double elapsed = std::chrono::duration<double>(Clock::now() - m_t0).count();
      if (m_s.budget_minutes > 0 && elapsed > 60.0 * m_s.budget_minutes) {
        m_stopped = true;
        break;
      }
    }
    if (m_stopped) break;
  }
  if (m_stopped) {  // a pass that only loads: what other workers finished meanwhile goes into the outputs
    m_elsewhere.clear();
    plan_pass();
  }
  write_outputs();
  write_comparisons();

  // Meta data.
  Index remaining = 0;
  for (const auto& r : m_runs) remaining += r->done ? 0 : 1;
  const double total = std::chrono::duration<double>(Clock::now() - m_t0).count();
  double run_seconds = 0;  // the time every finished run took when it ran (cached ones included)
  for (const auto& r : m_runs)
    if (r->done) run_seconds += r->prune_seconds + r->test.seconds + r->val.seconds + r->zs.seconds;
  std::ostringstream meta;
  meta << "key,value\n";
  const auto put = [&](const std::string& k, const std::string& v) { meta << k << ",\"" << v << "\"\n"; };
  put("date", utc_now());
  put("model", base_name(m_s.model));
  put("model_config", std::to_string(c.n_layers) + " layers, d " + std::to_string(c.d_model) + ", " +
                          std::to_string(c.n_heads) + " query / " + std::to_string(c.n_kv_heads) + " KV heads of " +
                          std::to_string(c.head_dim) + ", ffn " + std::to_string(c.ffn) + ", vocab " +
                          std::to_string(c.vocab) + (c.tied_output ? ", tied embeddings" : ""));
  put("n_heads", std::to_string(c.n_heads));
  put("n_kv_heads", std::to_string(c.n_kv_heads));
  put("text", base_name(m_s.text));
  put("shift_text", m_s.shift_text.empty() ? "" : base_name(m_s.shift_text));
  put("tokens", std::to_string(n));
  put("shift_tokens", std::to_string(m_shift.size()));
  put("seq", std::to_string(m_s.seq));
  put("seed", std::to_string(m_s.seed));
  {
    std::string seeds;
    for (double s : m_s.seeds) seeds += (seeds.empty() ? "" : " ") + std::to_string(std::uint64_t(s));
    put("seeds", seeds);
  }
  put("calib_windows", std::to_string(m_s.calib));
  put("test_windows", std::to_string(m_test_windows.size()));
  put("side_windows", std::to_string(m_side_windows.size()));
  put("test_windows_total", std::to_string(m_test_total));
  put("val_windows", std::to_string(m_val_windows.size()));
  put("sweep_ratio", fmt(m_s.sweep_ratio, 6));
  put("gqa_ratio", fmt(m_s.gqa_ratio, 6));
  const auto joined = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += (out.empty() ? "" : " ") + fmt(x, 6);
    return out;
  };
  put("ratios", joined(m_s.ratios));
  put("lambdas", joined(m_s.lambdas));
  for (auto& [r, a] : best_lambda) put("best_lambda_" + fmt(r, 6), fmt(a, 6));
  for (auto& [r, a] : best_rr_lambda) put("best_rotation_ridge_lambda_" + fmt(r, 6), fmt(a, 6));
  put("ridge_ratios", joined(ridge_ratios));
  put("ablation_ratios", joined(ablation_ratios));
  {
    std::string st;
    for (const auto& s : m_s.studies) st += (st.empty() ? "" : " ") + s;
    put("studies", st);
  }
  put("zeroshot_dir", m_s.zeroshot_dir.empty() ? "" : "yes");
  put("zeroshot_per_task", std::to_string(m_s.zeroshot_per_task));
  {
    std::string docs;
    for (const auto& t : m_tasks) docs += (docs.empty() ? "" : " ") + t.name + ":" + std::to_string(t.docs.size());
    put("zeroshot_docs", docs);
  }
  for (const auto& t : m_tasks)
    if (t.name == "boolq" && !t.docs.empty()) {  // the share of "yes" among the gold answers
      Index yes = 0;
      for (const auto& d : t.docs) yes += d.gold >= 0 && std::size_t(d.gold) < d.choices.size() && d.choices[std::size_t(d.gold)] == "yes";
      put("zs_boolq_gold_yes", fmt(double(yes) / double(t.docs.size()), 6));
    }
  put("runs_planned", std::to_string(m_runs.size()));
  put("runs_done", std::to_string(done_count()));
  put("runs_cached", std::to_string(cached_count()));
  put("runs_remaining", std::to_string(remaining));
  put("complete", remaining == 0 ? "yes" : "no");
  put("run_seconds_total", fixed(run_seconds, 1));
  put("cpu", cpu_model());
  put("cores", std::to_string(std::thread::hardware_concurrency()));
  put("memory", mem_total());
  put("threads", std::to_string(m_s.threads));
  put("load_start", load_start);
  put("load_end", loadavg());
  put("total_seconds", fixed(total, 1));
  put("backend", rcpu::backend());
#ifdef RCPU_TOOL_OPENBLAS
  put("blas", std::string("OpenBLAS ") + openblas_get_config());
#else
  put("blas", "Eigen (no BLAS)");
#endif
  const rcpu::KernelInfo kernels = rcpu::kernel_info();
  put("openblas_core", kernels.blas_core.empty() ? "(none)" : kernels.blas_core);
  put("products", rcpu::to_string(kernels.products));
#if defined(__clang__)
  put("compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  put("compiler", std::string("g++ ") + __VERSION__);
#endif
  put("eigen", std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                   std::to_string(EIGEN_MINOR_VERSION));
  write_atomic(m_s.out + "/meta.csv", meta.str());
  if (remaining > 0)
    std::cerr << "rcpu-prune-study: stopped " << (m_stopped ? "at the time budget" : "") << " with " << remaining << " of "
              << m_runs.size() << " runs still to do (about " << hms(remaining_cost())
              << "); run the same command again to go on\n";
  std::cerr << "rcpu-prune-study: " << hms(total) << " this time; results in " << m_s.out << "\n";
  std::cout << "RESULT runs=" << done_count() << " cached=" << cached_count() << " remaining=" << remaining
            << " seconds=" << fixed(total, 1) << "\n";
  return 0;
}

void usage() {
  std::cerr << "usage: rcpu-prune-study --model M.gguf --text wikitext-2-raw-test.txt --out DIR [--shift-text T]\n"
               "       [--zeroshot-dir DATA] [--zeroshot-per-task 500] [--budget-minutes M] [--cache DIR]\n"
               "       [--threads 2] [--seq 128] [--calib-windows 128] [--eval-windows 0 (all)] [--side-eval-windows 48]\n"
               "       [--val-windows 24] [--ratios 0.1,0.2,0.3] [--lambdas 0.003,0.03,0.3]\n"
               "       [--sweep-sizes 8,16,32,64,128,256,512] [--sweep-ratio 0.2] [--gqa-ratio 0.3333333333] [--seeds 1,2]\n"
               "       [--studies main,ridge,rotation_ridge,seeds,shift,statistics,ablation,gqa,adaptive,sweep]\n"
               "       [--ridge-ratios R,...] (default: every ratio) [--ablation-ratios 0.2] (default: the sweep ratio)\n"
               "       [--seed 20251009] [--chunk-windows 32] [--lockstep 4]\n"
               "       [--statistics-methods flap,flap_alam,rcpu_rotation] [--statistics-ratios 0.2]\n";
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    const auto integer = [&]() -> Index {
      const std::string v = next();
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || x < 0) die(a + " needs a non-negative integer, got '" + v + "'");
      return Index(x);
    };
    const auto one = [&](const std::vector<double>& v) {
      if (v.size() != 1) die(a + " takes one number");
      return v.front();
    };
    const auto words = [&]() {
      std::vector<std::string> out;
      std::stringstream ss(next());
      for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
      return out;
    };
    if (a == "--model") s.model = next();
    else if (a == "--text") s.text = next();
    else if (a == "--shift-text") s.shift_text = next();
    else if (a == "--out") s.out = next();
    else if (a == "--cache") s.cache = next();
    else if (a == "--zeroshot-dir") s.zeroshot_dir = next();
    else if (a == "--zeroshot-per-task") s.zeroshot_per_task = integer();
    else if (a == "--budget-minutes") s.budget_minutes = one(parse_list(next(), "--budget-minutes"));
    else if (a == "--threads") s.threads = int(integer());
    else if (a == "--seq") s.seq = integer();
    else if (a == "--calib-windows") s.calib = integer();
    else if (a == "--eval-windows") s.eval_windows = integer();
    else if (a == "--side-eval-windows") s.side_eval_windows = std::max<Index>(1, integer());
    else if (a == "--val-windows") s.val_windows = integer();
    else if (a == "--chunk-windows") s.chunk = integer();
    else if (a == "--lockstep") s.lockstep = std::max<Index>(1, integer());
    else if (a == "--seed") s.seed = std::uint64_t(integer());
    else if (a == "--seeds") s.seeds = parse_list(next(), "--seeds");
    else if (a == "--ratios") s.ratios = parse_list(next(), "--ratios");
    else if (a == "--lambdas") s.lambdas = parse_list(next(), "--lambdas");
    else if (a == "--ridge-ratios") s.ridge_ratios = parse_list(next(), "--ridge-ratios");
    else if (a == "--ablation-ratios") s.ablation_ratios = parse_list(next(), "--ablation-ratios");
    else if (a == "--sweep-sizes") s.sizes = parse_list(next(), "--sweep-sizes");
    else if (a == "--statistics-ratios") s.statistics_ratios = parse_list(next(), "--statistics-ratios");
    else if (a == "--statistics-methods") s.statistics_methods = words();
    else if (a == "--sweep-ratio") s.sweep_ratio = one(parse_list(next(), "--sweep-ratio"));
    else if (a == "--gqa-ratio") s.gqa_ratio = one(parse_list(next(), "--gqa-ratio"));
    else if (a == "--studies") {
      s.studies.clear();
      for (const std::string& w : words()) s.studies.insert(w);
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      die("unknown argument " + a);
    }
  }
  if (s.model.empty() || s.text.empty() || s.out.empty()) {
    usage();
    return 2;
  }
  for (double sd : s.seeds)
    if (!(sd >= 1 && std::floor(sd) == sd)) die("--seeds takes positive whole numbers");
  if (std::find(s.ratios.begin(), s.ratios.end(), s.sweep_ratio) == s.ratios.end() &&
      (s.studies.count("sweep") || s.studies.count("shift") || s.studies.count("seeds")))
    s.ratios.push_back(s.sweep_ratio);
#ifdef RCPU_TOOL_OPENBLAS
  openblas_set_num_threads(s.threads);
#endif
  Eigen::setNbThreads(s.threads);  // Eigen's products, when they are the ones used (rcpu/kernels.hpp)
  if (const std::string notice = rcpu::kernel_notice(); !notice.empty()) std::cerr << notice << "\n";
  try {
    std::filesystem::create_directories(s.out);
    Study study(s);
    return study.run();
  } catch (const std::exception& e) {
    std::cerr << "rcpu-prune-study: " << e.what() << "\n";
    return 1;
  }
}
