// rcpu-prune-study: the RCPU paper's comparison (Table 1 and its ablation) re-run on a real LLaMA-family
// model with rcpu::model::prune_models(), plus the studies the paper lacks (GQA rules, FLAP's adaptive
// allocation, a ridge lambda sweep chosen on held-out text, a calibration-size sweep, distribution shift).
// Writes CSV files; scripts/render_results.py turns them into docs/results.md and its figures, and
// scripts/reproduce_results.sh runs both (the one command).
//
//   rcpu-prune-study --model M.gguf --text wikitext-2-raw-test.txt [--shift-text corpus.txt] --out DIR
//                    [--threads 2] [--calib-windows 128] [--eval-windows 48] [--val-windows 24]
//                    [--ratios 0.1,0.2,0.3] [--lambdas 0.003,0.03,0.3] [--sweep-sizes 8,...,512]
//                    [--sweep-ratio 0.2] [--studies main,ablation,ridge,gqa,adaptive,sweep,shift]
//                    [--ridge-ratios 0.2] [--ablation-ratios 0.2]
//                    [--seed 20251009] [--seq 128] [--chunk-windows 32] [--lockstep 4]
//
// Time (the whole default plan must stay within 90 minutes on 2 cores): ridge's lambda is swept on
// validation windows at the --ridge-ratios (default: the sweep ratio) and the chosen value is used at
// every other ratio; the ablation runs at the --ablation-ratios (default: the sweep ratio).
//
// Protocol (METHOD.md section 5, as the issue fixes it): the WikiText-2 test split is prepared as the
// paper's evaluation does (lines joined with "\n\n") and tokenized once; its first half of tokens gives
// calibration windows (random starts, fixed seed) and validation windows (aligned, disjoint from every
// calibration window); its second half is cut into non-overlapping windows, of which a fixed, evenly
// spaced subset is evaluated (the same windows for every method).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
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

#include <rcpu/kernels.hpp>
#include <rcpu/io/gguf.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/tokenizer.hpp>

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
  std::vector<double> window_nll;
};

struct Run {
  std::string key, method_id, method;
  std::set<std::string> studies;
  PipelineOptions opt;
  std::string corpus = "wikitext";
  Index calib_windows = 128;
  bool want_test = true, want_val = false;
  // Results.
  bool done = false;
  Index params = 0, params_dense = 0, heads = 0, kv_heads = 0, channels = 0;
  double prune_seconds = 0, load_at_start = -1;
  Eval test, val;
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

struct Settings {
  std::string model, text, shift_text, out;
  int threads = 2;
  Index seq = 128, calib = 128, eval_windows = 48, val_windows = 24, chunk = 32, lockstep = 4;
  std::uint64_t seed = 20251009;
  std::vector<double> ratios{0.1, 0.2, 0.3}, lambdas{3e-3, 3e-2, 3e-1}, sizes{8, 16, 32, 64, 128, 256, 512};
  // Empty: the sweep ratio only.
  std::vector<double> ridge_ratios, ablation_ratios;
  double sweep_ratio = 0.2, gqa_ratio = 1.0 / 3.0;
  std::set<std::string> studies{"main", "ablation", "ridge", "gqa", "adaptive", "sweep", "shift"};
};

std::string ratio_tag(double r) { return fixed(r * 100, 1); }

class Study {
 public:
  explicit Study(Settings s) : m_s(std::move(s)) {}
  int run();

 private:
  Run& add(const std::string& study, const std::string& method_id, double ratio, const std::string& corpus,
           Index calib, double rel_lambda = 0, const std::string& variant = "");
  // Runs a lockstep group, evaluates each run, and hands each pruned model to `keep` (if set).
  void execute(std::vector<Run*> group,
               const std::function<void(Run&, PipelineResult&)>& keep = std::function<void(Run&, PipelineResult&)>());
  Eval evaluate(const rcpu::model::LlamaModel& m, const std::vector<std::int32_t>& tokens,
                const std::vector<Index>& windows, const std::string& what);
  std::vector<std::int32_t> calibration(const std::string& corpus, Index windows) const;
  void write_runs() const;
  void append_layers(const Run& r, const PipelineResult& res);
  void append_windows(const Run& r, bool test = true, bool val = true);
  void progress_line(const std::string& what, double frac_of_run);
  double remaining_cost() const;
  double run_cost(const Run& r) const;

  Settings m_s;
  rcpu::model::LlamaModel m_dense;
  std::vector<std::int32_t> m_tokens, m_first, m_second, m_shift;
  std::vector<Index> m_calib_starts, m_shift_starts, m_test_windows, m_val_windows;
  std::vector<std::unique_ptr<Run>> m_runs;
  std::map<std::string, Run*> m_by_key;
  Clock::time_point m_t0;
  double m_pipe_rate = -1, m_eval_rate = -1;  // seconds per calibration window (x layers) / per eval window
  Index m_runs_done = 0;
  std::string m_current;
};

Run& Study::add(const std::string& study, const std::string& method_id, double ratio, const std::string& corpus,
                Index calib, double rel_lambda, const std::string& variant) {
  std::ostringstream key;
  key << method_id << (variant.empty() ? "" : "-" + variant) << "-r" << ratio_tag(ratio) << "-" << corpus << calib;
  if (method_id == "ridge") key << "-a" << fmt(rel_lambda, 3);
  const std::string k = key.str();
  auto it = m_by_key.find(k);
  if (it != m_by_key.end()) {
    it->second->studies.insert(study);
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
  Run& ref = *r;
  m_by_key[k] = r.get();
  m_runs.push_back(std::move(r));
  return ref;
}

std::vector<std::int32_t> Study::calibration(const std::string& corpus, Index windows) const {
  const std::vector<Index>& starts = corpus == "wikitext" ? m_calib_starts : m_shift_starts;
  const std::vector<std::int32_t>& toks = corpus == "wikitext" ? m_tokens : m_shift;
  if (windows > Index(starts.size())) die("not enough calibration windows drawn");
  return rcpu::model::gather_windows(toks, std::vector<Index>(starts.begin(), starts.begin() + windows), m_s.seq);
}

double Study::run_cost(const Run& r) const {
  const double pipe = m_pipe_rate > 0 ? m_pipe_rate : 1.6 * (m_eval_rate > 0 ? m_eval_rate : 0.5);
  const double ev = m_eval_rate > 0 ? m_eval_rate : 0.5;
  return pipe * double(r.calib_windows) + ev * double((r.want_test ? m_test_windows.size() : 0) +
                                                      (r.want_val ? m_val_windows.size() : 0));
}

double Study::remaining_cost() const {
  double c = 0;
  for (const auto& r : m_runs)
    if (!r->done) c += run_cost(*r);
  return c;
}

void Study::progress_line(const std::string& what, double frac_of_run) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - m_t0).count();
  double remaining = remaining_cost();
  (void)frac_of_run;
  std::cerr << "[" << hms(elapsed) << " | " << m_runs_done << "/" << m_runs.size() << " runs done | ETA "
            << hms(remaining) << " | load " << fixed(load1(), 2) << "] " << what << "\n"
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
  e.window_nll = r.window_nll;
  const double rate = r.seconds / double(std::max<Index>(1, r.windows));
  m_eval_rate = m_eval_rate < 0 ? rate : 0.5 * (m_eval_rate + rate);
  std::cerr << "    " << what << ": ppl " << fixed(e.ppl, 3) << " on " << e.windows << " windows (" << fixed(r.seconds, 1)
            << " s, " << fixed(r.tokens_per_second, 0) << " tok/s)\n";
  return e;
}

void Study::execute(std::vector<Run*> group, const std::function<void(Run&, PipelineResult&)>& keep) {
  std::vector<PipelineOptions> configs;
  std::string names;
  for (Run* r : group) {
    configs.push_back(r->opt);
    names += (names.empty() ? "" : ", ") + r->key;
    r->load_at_start = load1();
  }
  const std::vector<std::int32_t> calib = calibration(group.front()->corpus, group.front()->calib_windows);
  progress_line("pruning: " + names, 0);
  const auto t0 = Clock::now();
  Index layers_done = 0;
  const auto on_layer = [&](Index l, Index n) {
    layers_done = l + 1;
    if ((l + 1) % 10 == 0 || l + 1 == n)
      progress_line("  layer " + std::to_string(l + 1) + "/" + std::to_string(n) + " of " + names, double(l + 1) / double(n));
  };
  std::vector<PipelineResult> res = rcpu::model::prune_models(m_dense, calib, configs, nullptr, on_layer);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // Seconds per calibration window and configuration (lockstep sharing makes groups a bit cheaper).
  const double rate = secs / double(group.front()->calib_windows * Index(group.size()));
  m_pipe_rate = m_pipe_rate < 0 ? rate : 0.7 * m_pipe_rate + 0.3 * rate;
  (void)layers_done;
  for (std::size_t i = 0; i < group.size(); ++i) {
    Run& r = *group[i];
    PipelineResult& p = res[i];
    r.params = p.parameters;
    r.params_dense = p.parameters_dense;
    r.prune_seconds = p.seconds;
    for (const auto& L : p.layers) {
      r.heads += L.heads;
      r.kv_heads += L.kv_heads;
      r.channels += L.channels;
    }
    if (r.want_val) r.val = evaluate(p.model, m_first, m_val_windows, r.key + " [validation]");
    if (r.want_test) r.test = evaluate(p.model, m_second, m_test_windows, r.key + " [test]");
    append_layers(r, p);
    append_windows(r);
    r.done = true;
    ++m_runs_done;
    write_runs();
    if (keep) keep(r, p);
  }
}

void Study::write_runs() const {
  std::ofstream f(m_s.out + "/runs.csv");
  f << "key,studies,method_id,method,score,compensation,ratio,attention_ratio,mlp_ratio,gqa,allocation,o_proj_rotation,"
       "relative_lambda,compensate_attention,compensate_mlp,proper_rotation,calib_corpus,calib_windows,params,"
       "params_dense,heads,kv_heads,channels,prune_seconds,load_at_start,test_ppl,test_nll,test_windows,test_seconds,"
       "val_ppl,val_nll,val_windows,val_seconds\n";
  for (const auto& rp : m_runs) {
    const Run& r = *rp;
    if (!r.done) continue;
    std::string studies;
    for (const auto& s : r.studies) studies += (studies.empty() ? "" : ";") + s;
    const PipelineOptions& o = r.opt;
    f << r.key << "," << studies << "," << r.method_id << ",\"" << r.method << "\"," << rcpu::to_string(o.score) << ","
      << rcpu::to_string(o.compensation) << "," << fmt(o.ratio, 6) << "," << fmt(o.heads_ratio(), 6) << ","
      << fmt(o.channels_ratio(), 6) << "," << rcpu::model::to_string(o.gqa) << "," << rcpu::model::to_string(o.allocation)
      << "," << rcpu::model::to_string(o.o_proj_rotation) << "," << fmt(o.relative_lambda, 6) << ","
      << o.compensate_attention << "," << o.compensate_mlp << "," << o.compensation_options.procrustes.proper_rotation
      << "," << r.corpus << "," << r.calib_windows << "," << r.params << "," << r.params_dense << "," << r.heads << ","
      << r.kv_heads << "," << r.channels << "," << fixed(r.prune_seconds, 2) << "," << fixed(r.load_at_start, 2) << ","
      << fmt(r.test.ppl, 8) << "," << fmt(r.test.nll, 10) << "," << r.test.windows << "," << fixed(r.test.seconds, 2)
      << "," << fmt(r.val.ppl, 8) << "," << fmt(r.val.nll, 10) << "," << r.val.windows << "," << fixed(r.val.seconds, 2)
      << "\n";
  }
}

void Study::append_layers(const Run& r, const PipelineResult& p) {
  const std::string path = m_s.out + "/layers.csv";
  const bool fresh = !std::ifstream(path).good();
  std::ofstream f(path, std::ios::app);
  if (fresh)
    f << "key,layer,heads,kv_heads,channels,params,attention_pruned,mlp_pruned,attn_err_before,attn_err_after,"
         "attn_cos_after,attn_norm_ratio_after,mlp_err_before,mlp_err_after,mlp_cos_after,mlp_norm_ratio_after,"
         "lambda_attention,lambda_mlp,det_attention,det_mlp,rank_m_attention,cond_m_attention,rank_m_mlp,cond_m_mlp,"
         "seconds_dense,seconds_prune,seconds_forward,shared_with\n";
  for (const auto& L : p.layers)
    f << r.key << "," << L.layer << "," << L.heads << "," << L.kv_heads << "," << L.channels << "," << L.parameters << ","
      << L.attention_pruned << "," << L.mlp_pruned << "," << fmt(L.attention.before.relative_error, 6) << ","
      << fmt(L.attention.after.relative_error, 6) << "," << fmt(L.attention.after.cosine, 8) << ","
      << fmt(L.attention.after.norm_ratio, 6) << "," << fmt(L.mlp.before.relative_error, 6) << ","
      << fmt(L.mlp.after.relative_error, 6) << "," << fmt(L.mlp.after.cosine, 8) << "," << fmt(L.mlp.after.norm_ratio, 6)
      << "," << fmt(L.lambda_attention, 6) << "," << fmt(L.lambda_mlp, 6) << "," << L.det_attention << "," << L.det_mlp
      << "," << L.attention.rank_m << "," << fmt(L.attention.condition_m, 4) << "," << L.mlp.rank_m << ","
      << fmt(L.mlp.condition_m, 4) << "," << fixed(L.seconds_dense, 3) << "," << fixed(L.seconds_prune, 3) << ","
      << fixed(L.seconds_forward, 3) << "," << L.shared_with << "\n";
}

void Study::append_windows(const Run& r, bool test, bool val) {
  const std::string path = m_s.out + "/window_nll.csv";
  const bool fresh = !std::ifstream(path).good();
  std::ofstream f(path, std::ios::app);
  if (fresh) f << "key,split,window,nll\n";
  const auto put = [&](const Eval& e, const char* split, const std::vector<Index>& w) {
    for (std::size_t i = 0; i < e.window_nll.size(); ++i)
      f << r.key << "," << split << "," << w[i] << "," << fmt(e.window_nll[i], 10) << "\n";
  };
  if (test) put(r.test, "test", m_test_windows);
  if (val) put(r.val, "val", m_val_windows);
}

int Study::run() {
  m_t0 = Clock::now();
  const std::string load_start = loadavg();
  // Model and text.
  std::cerr << "rcpu-prune-study: loading " << m_s.model << "\n";
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(m_s.model);
  const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
  m_dense = rcpu::model::LlamaModel::from_gguf(file);
  const auto& c = m_dense.config();
  m_tokens = tok.encode(rcpu::model::wikitext_protocol_text(read_text(m_s.text)));
  const Index n = Index(m_tokens.size()), half = n / 2;
  m_first.assign(m_tokens.begin(), m_tokens.begin() + half);
  m_second.assign(m_tokens.begin() + half, m_tokens.end());
  std::cerr << "  " << c.n_layers << " layers, d " << c.d_model << ", heads " << c.n_heads << "/" << c.n_kv_heads
            << ", head_dim " << c.head_dim << ", ffn " << c.ffn << ", vocab " << c.vocab << "; text: " << n
            << " tokens, halves of " << half << " and " << n - half << "\n";

  // Windows. Calibration: the largest set any study needs, nested (the first N windows are the set of size N).
  Index max_calib = m_s.calib;
  if (m_s.studies.count("sweep"))
    for (double s : m_s.sizes) max_calib = std::max(max_calib, Index(s));
  m_calib_starts = rcpu::model::random_windows(0, half, m_s.seq, max_calib, m_s.seed);
  // Validation: aligned windows of the first half that touch no calibration window, evenly spaced.
  std::vector<char> touched(std::size_t(half / m_s.seq), 0);
  for (Index s : m_calib_starts)
    for (Index w = s / m_s.seq; w <= (s + m_s.seq - 1) / m_s.seq && w < Index(touched.size()); ++w) touched[std::size_t(w)] = 1;
  std::vector<Index> free_windows;
  for (Index w = 0; w < Index(touched.size()); ++w)
    if (!touched[std::size_t(w)]) free_windows.push_back(w);
  for (Index i : rcpu::model::evenly_spaced_windows(Index(free_windows.size()), m_s.val_windows))
    m_val_windows.push_back(free_windows[std::size_t(i)]);
  const Index test_total = rcpu::model::count_windows(n - half, m_s.seq);
  m_test_windows = rcpu::model::evenly_spaced_windows(test_total, m_s.eval_windows > 0 ? m_s.eval_windows : test_total);
  if (m_s.studies.count("shift")) {
    if (m_s.shift_text.empty()) die("the shift study needs --shift-text (or leave it out of --studies)");
    m_shift = tok.encode(read_text(m_s.shift_text));
    m_shift_starts = rcpu::model::random_windows(0, Index(m_shift.size()), m_s.seq, m_s.calib, m_s.seed + 1);
    std::cerr << "  shift corpus: " << m_shift.size() << " tokens\n";
  }
  std::cerr << "  calibration: " << max_calib << " random windows of " << m_s.seq << " (seed " << m_s.seed
            << ") in the first half; validation: " << m_val_windows.size() << " of " << free_windows.size()
            << " free aligned windows; test: " << m_test_windows.size() << " of " << test_total
            << " windows of the second half\n";

  // The plan.
  const auto want = [&](const char* s) { return m_s.studies.count(s) > 0; };
  const Index N0 = m_s.calib;
  const auto among = [](const std::vector<double>& v, double r) {
    return std::any_of(v.begin(), v.end(), [r](double x) { return std::abs(x - r) < 1e-12; });
  };
  const std::vector<double> ridge_ratios = m_s.ridge_ratios.empty() ? std::vector<double>{m_s.sweep_ratio} : m_s.ridge_ratios;
  const std::vector<double> ablation_ratios =
      m_s.ablation_ratios.empty() ? std::vector<double>{m_s.sweep_ratio} : m_s.ablation_ratios;
  // Ridge: a lambda sweep at the ridge ratios (and the sweep ratio when the calibration or shift
  // study needs it), each evaluated on the validation windows only.
  std::map<double, std::vector<Run*>> ridge_sweep;
  const bool ridge_needed = want("ridge") || want("main") || want("sweep") || want("shift");
  if (ridge_needed)
    for (double r : m_s.ratios)
      if (((want("ridge") || want("main")) && among(ridge_ratios, r)) ||
          ((want("sweep") || want("shift")) && r == m_s.sweep_ratio))
        for (double a : m_s.lambdas) {
          Run& run = add("ridge", "ridge", r, "wikitext", N0, a);
          run.want_test = false;
          run.want_val = true;
          ridge_sweep[r].push_back(&run);
        }
  std::vector<std::vector<Run*>> groups;  // lockstep groups, in order
  const auto group_of = [&](std::vector<Run*> g) {
    std::vector<Run*> out;
    for (Run* r : g)
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
    return out;
  };
  if (want("main") || want("ablation"))
    for (double r : m_s.ratios) {
      std::vector<Run*> rot, none;
      if (want("main")) {
        for (const char* id : {"wanda_sp", "flap", "rcpu_rotation_scale", "rcpu_rotation_bias"})
          groups.push_back({&add("main", id, r, "wikitext", N0)});
        none.push_back(&add("main", "rcpu_none", r, "wikitext", N0));
        for (const char* id : {"rcpu_rotation", "rcpu_rotation_proper", "rcpu_rotation_per_head"})
          rot.push_back(&add("main", id, r, "wikitext", N0));
      }
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
      std::vector<Run*> g;
      for (const char* id : {"rcpu_rotation"}) {  // the rule's effect with the paper's method (time)
        Run& run = add("gqa", id, m_s.gqa_ratio, "wikitext", N0, 0, std::string("attn-") + rcpu::model::to_string(rule));
        run.opt.gqa = rule;
        run.opt.attention_ratio = m_s.gqa_ratio;
        run.opt.mlp_ratio = 0.0;
        g.push_back(&run);
      }
      groups.push_back(g);
    }
  if (want("sweep"))
    for (double s : m_s.sizes)
      groups.push_back({&add("sweep", "rcpu_rotation", m_s.sweep_ratio, "wikitext", Index(s))});
  if (want("shift"))
    for (const char* id : {"flap", "rcpu_none", "rcpu_rotation"})
      groups.push_back({&add("shift", id, m_s.sweep_ratio, "pydoc", N0)});
  // Groups in lockstep are capped (memory: one pruned model per member).
  std::vector<std::vector<Run*>> capped;
  for (auto& g : groups)
    for (std::size_t i = 0; i < g.size(); i += std::size_t(m_s.lockstep))
      capped.emplace_back(g.begin() + long(i), g.begin() + long(std::min(g.size(), i + std::size_t(m_s.lockstep))));

  std::cerr << "  plan: " << m_runs.size() << " pruning runs (+ the ridge runs chosen on validation), "
            << capped.size() << " groups; threads " << m_s.threads << "; load " << load_start << "\n";

  // Dense reference.
  Run& dense = *m_runs.emplace_back(std::make_unique<Run>());
  dense.key = "dense";
  dense.method_id = "dense";
  dense.method = "dense";
  dense.studies = {"main"};
  dense.opt.ratio = 0;
  dense.opt.compensation = rcpu::Compensation::none;
  dense.calib_windows = 0;
  dense.want_val = true;
  dense.params = dense.params_dense = m_dense.parameter_count();
  dense.heads = c.n_heads * c.n_layers;
  dense.kv_heads = c.n_kv_heads * c.n_layers;
  dense.channels = c.ffn * c.n_layers;
  progress_line("dense model", 0);
  dense.val = evaluate(m_dense, m_first, m_val_windows, "dense [validation]");
  dense.test = evaluate(m_dense, m_second, m_test_windows, "dense [test]");
  dense.done = true;
  ++m_runs_done;
  write_runs();
  append_windows(dense);

  // Ridge sweeps first: the chosen lambda feeds the main table, the calibration sweep and the shift study.
  // The model of the best lambda so far (validation perplexity) is kept, so that the chosen one is
  // evaluated on the test windows without pruning again.
  std::map<double, double> best_lambda;
  for (auto& [ratio, runs] : ridge_sweep) {
    Run* best = nullptr;
    rcpu::model::LlamaModel best_model;
    for (Run* r : runs)
      execute({r}, [&](Run& run, PipelineResult& p) {
        if (best == nullptr || run.val.nll < best->val.nll) {
          best = &run;
          best_model = std::move(p.model);
        }
      });
    best_lambda[ratio] = best->opt.relative_lambda;
    std::cerr << "  ridge at ratio " << ratio << ": best relative lambda " << best->opt.relative_lambda
              << " (validation ppl " << fixed(best->val.ppl, 3) << ")\n";
    best->studies.insert("main");
    best->studies.insert("ridge_best");
    best->want_test = true;
    best->test = evaluate(best_model, m_second, m_test_windows, best->key + " [test]");
    append_windows(*best, true, false);
    write_runs();
  }
  // Ratios without a sweep of their own take the lambda chosen at the nearest swept ratio.
  if (want("main") && !best_lambda.empty())
    for (double r : m_s.ratios) {
      if (best_lambda.count(r)) continue;
      double near = best_lambda.begin()->first;
      for (const auto& [rr, a] : best_lambda)
        if (std::abs(rr - r) < std::abs(near - r)) near = rr;
      Run& run = add("main", "ridge", r, "wikitext", N0, best_lambda[near]);
      run.studies.insert("ridge_best");
      capped.push_back({&run});
    }
  if (best_lambda.count(m_s.sweep_ratio)) {
    const double a = best_lambda[m_s.sweep_ratio];
    if (want("sweep"))
      for (double s : m_s.sizes) {
        Run& r = add("sweep", "ridge", m_s.sweep_ratio, "wikitext", Index(s), a);
        if (!r.done) capped.push_back({&r});
      }
    if (want("shift")) {
      Run& r = add("shift", "ridge", m_s.sweep_ratio, "pydoc", N0, a);
      capped.push_back({&r});
    }
  }
  for (auto& g : capped) {
    std::vector<Run*> todo;
    for (Run* r : g)
      if (!r->done) todo.push_back(r);
    if (!todo.empty()) execute(todo);
  }

  // Meta data.
  const double total = std::chrono::duration<double>(Clock::now() - m_t0).count();
  std::ofstream meta(m_s.out + "/meta.csv");
  meta << "key,value\n";
  const auto put = [&](const std::string& k, const std::string& v) { meta << k << ",\"" << v << "\"\n"; };
  put("date", utc_now());
  put("model", base_name(m_s.model));
  put("model_config", std::to_string(c.n_layers) + " layers, d " + std::to_string(c.d_model) + ", " +
                          std::to_string(c.n_heads) + " query / " + std::to_string(c.n_kv_heads) + " KV heads of " +
                          std::to_string(c.head_dim) + ", ffn " + std::to_string(c.ffn) + ", vocab " +
                          std::to_string(c.vocab) + (c.tied_output ? ", tied embeddings" : ""));
  put("text", base_name(m_s.text));
  put("shift_text", m_s.shift_text.empty() ? "" : base_name(m_s.shift_text));
  put("tokens", std::to_string(n));
  put("shift_tokens", std::to_string(m_shift.size()));
  put("seq", std::to_string(m_s.seq));
  put("seed", std::to_string(m_s.seed));
  put("calib_windows", std::to_string(m_s.calib));
  put("test_windows", std::to_string(m_test_windows.size()));
  put("test_windows_total", std::to_string(test_total));
  put("val_windows", std::to_string(m_val_windows.size()));
  put("sweep_ratio", fmt(m_s.sweep_ratio, 6));
  put("gqa_ratio", fmt(m_s.gqa_ratio, 6));
  const auto joined = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += (out.empty() ? "" : " ") + fmt(x, 6);
    return out;
  };
  put("lambdas", joined(m_s.lambdas));
  for (auto& [r, a] : best_lambda) put("best_lambda_" + fmt(r, 6), fmt(a, 6));
  put("ridge_ratios", joined(ridge_ratios));
  put("ablation_ratios", joined(ablation_ratios));
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
  std::cerr << "rcpu-prune-study: done in " << hms(total) << "; results in " << m_s.out << "\n";
  std::cout << "RESULT runs=" << m_runs_done << " seconds=" << fixed(total, 1) << "\n";
  return 0;
}

void usage() {
  std::cerr << "usage: rcpu-prune-study --model M.gguf --text wikitext-2-raw-test.txt --out DIR [--shift-text T]\n"
               "       [--threads 2] [--seq 128] [--calib-windows 128] [--eval-windows 48] [--val-windows 24]\n"
               "       [--ratios 0.1,0.2,0.3] [--lambdas 0.003,0.03,0.3] [--sweep-sizes 8,16,32,64,128,256,512]\n"
               "       [--sweep-ratio 0.2] [--gqa-ratio 0.3333333333] [--studies main,ablation,ridge,gqa,adaptive,sweep,shift]\n"
               "       [--ridge-ratios 0.2] [--ablation-ratios 0.2]   (default: the sweep ratio)\n"
               "       [--seed 20251009] [--chunk-windows 32] [--lockstep 4]\n";
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
    if (a == "--model") s.model = next();
    else if (a == "--text") s.text = next();
    else if (a == "--shift-text") s.shift_text = next();
    else if (a == "--out") s.out = next();
    else if (a == "--threads") s.threads = int(integer());
    else if (a == "--seq") s.seq = integer();
    else if (a == "--calib-windows") s.calib = integer();
    else if (a == "--eval-windows") s.eval_windows = integer();
    else if (a == "--val-windows") s.val_windows = integer();
    else if (a == "--chunk-windows") s.chunk = integer();
    else if (a == "--lockstep") s.lockstep = std::max<Index>(1, integer());
    else if (a == "--seed") s.seed = std::uint64_t(integer());
    else if (a == "--ratios") s.ratios = parse_list(next(), "--ratios");
    else if (a == "--lambdas") s.lambdas = parse_list(next(), "--lambdas");
    else if (a == "--ridge-ratios") s.ridge_ratios = parse_list(next(), "--ridge-ratios");
    else if (a == "--ablation-ratios") s.ablation_ratios = parse_list(next(), "--ablation-ratios");
    else if (a == "--sweep-sizes") s.sizes = parse_list(next(), "--sweep-sizes");
    else if (a == "--sweep-ratio") s.sweep_ratio = parse_list(next(), "--sweep-ratio").at(0);
    else if (a == "--gqa-ratio") s.gqa_ratio = parse_list(next(), "--gqa-ratio").at(0);
    else if (a == "--studies") {
      s.studies.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) s.studies.insert(item);
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
  if (std::find(s.ratios.begin(), s.ratios.end(), s.sweep_ratio) == s.ratios.end() &&
      (s.studies.count("sweep") || s.studies.count("shift")))
    s.ratios.push_back(s.sweep_ratio);
#ifdef RCPU_TOOL_OPENBLAS
  openblas_set_num_threads(s.threads);
#endif
  Eigen::setNbThreads(s.threads);  // Eigen's products, when they are the ones used (rcpu/kernels.hpp)
  if (const std::string notice = rcpu::kernel_notice(); !notice.empty()) std::cerr << notice << "\n";
  try {
    Study study(s);
    return study.run();
  } catch (const std::exception& e) {
    std::cerr << "rcpu-prune-study: " << e.what() << "\n";
    return 1;
  }
}
