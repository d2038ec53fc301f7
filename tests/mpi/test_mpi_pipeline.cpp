// rcpu::mpi::prune_models (rcpu/model/distributed.hpp) on the real stories260K model under mpirun (CTest:
// 1, 2 and 3 ranks): the same pruned models as one process over all calibration windows (the same kept
// heads and channels in every layer, weights equal to 1e-5 relative, perplexity to 1e-6 relative), the
// same on every rank bit for bit; the statistics of a layer equal one process's to 1e-13; bad input on
// one rank only makes every rank throw. Every check is agreed across ranks before it is counted.
// Exit 77 (CTest: skipped) when ../shared/data/stories260K.gguf or WikiText-2 is absent (RCPU_DATA_DIR).
// Usage: test_mpi_pipeline [MODEL.gguf [WINDOWS]]: another model (CTest: SmolLM2-135M-Instruct where
// tools/fetch_smollm2.sh has fetched it), with the rotation only instead of six configurations, without the bad-input
// checks, on WINDOWS calibration windows of 32 tokens (default 33; docs/mpi.md runs it with 9 to show the
// rank-deficient case fail). One process's reference run is made on rank 0 only.
#include <rcpu/io/gguf.hpp>
#include <rcpu/model/distributed.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/tokenizer.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <functional>
#include <iostream>
#include "../standalone_checks.hpp"
#include <sstream>
#include <string>
#include <vector>

namespace {

using rcpu_test::read_text;

using rcpu::Index;
using rcpu::model::PipelineOptions;

int g_failures = 0, g_checks = 0;

bool all_true(bool ok) {
  int v = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return v == 1;
}

void check(bool ok, const std::string& what) {
  const bool all = all_true(ok);
  ++g_checks;
  if (!all) ++g_failures;
  if (rcpu::mpi::rank(MPI_COMM_WORLD) == 0) std::cout << (all ? "ok   " : "FAIL ") << what << "\n";
}

double rel(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return 1e30;
  const double n = b.cast<double>().norm();
  return (a.cast<double>() - b.cast<double>()).norm() / (n > 0 ? n : 1.0);
}

PipelineOptions config(const std::string& method, double ratio) {
  PipelineOptions o = rcpu::model::method_options(method, ratio);
  o.seq_len = 32;
  o.chunk_windows = 2;
  o.label = method + "-" + std::to_string(ratio);
  return o;
}


}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const MPI_Comm comm = MPI_COMM_WORLD;
  const int me = rcpu::mpi::rank(comm), p = rcpu::mpi::size(comm);
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  const bool other_model = argc > 1 && std::string(argv[1]).size() > 0;
  const std::string model_path = other_model ? std::string(argv[1]) : data + "/stories260K.gguf";
  for (const std::string& f : {model_path, data + "/wikitext-2-raw-test.txt"})
    if (!std::ifstream(f)) {
      if (me == 0)
        std::cout << "SKIPPED: " << f << " not found (see docs/models.md; set RCPU_DATA_DIR"
                  << (other_model ? "; tools/fetch_smollm2.sh fetches SmolLM2" : "") << ")\n";
      MPI_Finalize();
      return 77;
    }
  const auto finish = [&] {
    if (me == 0) std::cout << (g_failures ? "FAILED: " : "passed: ") << g_checks - g_failures << " of " << g_checks << " checks\n";
    MPI_Finalize();
    return g_failures == 0 ? 0 : 1;
  };
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(model_path);
  const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
  const rcpu::model::LlamaModel dense = rcpu::model::LlamaModel::from_gguf(file);
  const std::vector<std::int32_t> ids = tok.encode(read_text(data + "/wikitext-2-raw-test.txt", 40000));
  const Index seq = 32;
  // Calibration: 9 windows (5 chunks of 2, the last one short); evaluation: 6 aligned windows after them.
  // SmolLM2 gets 33 windows (1056 tokens): with fewer tokens than a module's output width (576) its
  // Procrustes matrix M is rank-deficient, the rotation is then not unique, and rounding (the order of
  // the statistics' sums) decides it: one process and several would prune differently (docs/mpi.md).
  const Index n_calib = other_model ? (argc > 2 ? Index(std::atol(argv[2])) : 33) : 9;
  check(Index(ids.size()) >= (n_calib + 9) * seq, "the text gives enough windows");
  const std::vector<std::int32_t> calib(ids.begin(), ids.begin() + n_calib * seq);
  rcpu::model::PerplexityOptions po;
  po.window = seq;
  for (Index w = n_calib + 3; w < n_calib + 9; ++w) po.windows.push_back(w);
  if (me == 0)
    std::cout << model_path << ", " << p << " rank(s), calibration " << n_calib << " windows of 32 in chunks of 2\n";

  // 1. One layer's statistics: each rank's share through the dense layer 0, all-reduced, against one
  //    process over every window (the shares are whole chunks, so the forward passes agree bit for bit).
  {
    const auto share = rcpu::mpi::calibration_share(calib, seq, 2, me, p);
    rcpu::model::detail::DensePass mine, one;
    rcpu::model::detail::run_dense_pass(dense.config(), dense.layer(0), 0, dense.embed(share), seq, 2, true, true, false, mine);
    rcpu::model::detail::run_dense_pass(dense.config(), dense.layer(0), 0, dense.embed(calib), seq, 2, true, true, false, one);
    rcpu::mpi::allreduce(mine.o_stats, comm);
    rcpu::mpi::allreduce(mine.d_stats, comm);
    const auto close = [](const auto& a, const auto& b) {
      const auto r = [](const auto& x, const auto& y) { return (x - y).norm() / std::max(1e-300, y.norm()); };
      return a.tokens() == b.tokens() && r(a.sum(), b.sum()) < 1e-13 && r(a.sq_sum(), b.sq_sum()) < 1e-13 &&
             r(a.abs_sum(), b.abs_sum()) < 1e-13 && r(a.m2(), b.m2()) < 1e-13 && r(a.gram(), b.gram()) < 1e-13;
    };
    check(close(mine.o_stats, one.o_stats), "layer 0, o_proj input: all-reduced statistics equal one process's to 1e-13");
    check(close(mine.d_stats, one.d_stats), "layer 0, down_proj input: all-reduced statistics equal one process's to 1e-13");
  }

  // 2. Whole pipelines: several methods in one lockstep call (dense statistics and FLAP's adaptive
  //    allocation included, whose scoring pass is all-reduced too).
  std::vector<PipelineOptions> configs = {config("rcpu_rotation", 0.3), config("rcpu_rotation_scale", 0.2),
                                          config("wanda_sp", 0.2), config("flap_alam", 0.2)};
  {
    PipelineOptions o = config("ridge", 0.3);
    o.relative_lambda = 0.03;
    configs.push_back(o);
    o = config("rcpu_rotation_bias", 0.3);
    o.statistics = rcpu::model::StatisticsSource::dense;
    o.label += "-dense";
    configs.push_back(o);
  }
  if (other_model) configs = {configs[0]};  // the rotation (CI time: each run is about a minute on 2 cores)
  // One process's run on rank 0 only: the other ranks' results are compared with rank 0's bit for bit
  // below, so one reference suffices (and on 2 cores it halves the test's time).
  const auto dist = rcpu::mpi::prune_models(dense, calib, configs, comm);
  std::vector<rcpu::model::PipelineResult> reference;
  if (me == 0) reference = rcpu::model::prune_models(dense, calib, configs);
  const auto& single = me == 0 ? reference : dist;
  check(dist.size() == configs.size(), "one result per configuration");
  for (std::size_t c = 0; c < configs.size(); ++c) {
    const auto& a = dist[c];
    const auto& b = single[c];
    bool same_kept = a.layers.size() == b.layers.size();
    double worst = 0;
    for (std::size_t l = 0; same_kept && l < a.layers.size(); ++l) {
      same_kept = same_kept && a.layers[l].kept_heads == b.layers[l].kept_heads &&
                  a.layers[l].kept_channels == b.layers[l].kept_channels;
      const auto& la = a.model.layer(Index(l));
      const auto& lb = b.model.layer(Index(l));
      worst = std::max({worst, rel(la.wo, lb.wo), rel(la.w_down, lb.w_down), rel(la.wq, lb.wq), rel(la.w_up, lb.w_up)});
      if (lb.bo.size() || la.bo.size()) worst = std::max(worst, rel(la.bo, lb.bo));
      if (lb.b_down.size() || la.b_down.size()) worst = std::max(worst, rel(la.b_down, lb.b_down));
    }
    const double pa = rcpu::model::perplexity(a.model, ids, po).perplexity;
    const double pb = me == 0 ? rcpu::model::perplexity(b.model, ids, po).perplexity : pa;
    std::ostringstream name;
    name << configs[c].label << ": ";
    check(same_kept, name.str() + "the same kept heads and channels in every layer as one process");
    std::ostringstream w;
    w << std::scientific << std::setprecision(1) << worst;
    check(worst < 1e-5, name.str() + "weights equal one process's to 1e-5 relative (worst " + w.str() + ")");
    check(std::abs(pa - pb) <= 1e-6 * pb, name.str() + "perplexity " + std::to_string(pa) + " equals one process's to 1e-6");
    // The same on every rank, bit for bit: rank 0's weights broadcast and compared.
    bool identical = true;
    for (Index l = 0; l < a.model.n_layers(); ++l)
      for (const Eigen::MatrixXf* m : {&a.model.layer(l).wo, &a.model.layer(l).w_down}) {
        Eigen::MatrixXf root = *m;
        MPI_Bcast(root.data(), int(root.size()), MPI_FLOAT, 0, comm);
        identical = identical && std::memcmp(root.data(), m->data(), sizeof(float) * std::size_t(m->size())) == 0;
      }
    check(identical, name.str() + "the pruned weights are the same on every rank, bit for bit");
  }

  // 3. Bad input on one rank only: every rank throws, naming it. On stories260K only (1, 2 and 3 ranks):
  //    the checks do not depend on the model, and the last one prunes once more.
  if (other_model) return finish();
  const auto message_of = [&](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const rcpu::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  {
    std::vector<std::int32_t> bad = calib;
    if (me == p - 1) bad.pop_back();  // not a whole number of windows
    const std::string m = message_of([&] { rcpu::mpi::prune_models(dense, bad, {configs[0]}, comm); });
    check(m.find("rank " + std::to_string(p - 1) + " of " + std::to_string(p)) != std::string::npos &&
              m.find("multiple of seq_len") != std::string::npos,
          "a malformed calibration on the last rank only: every rank throws, naming it (" + m + ")");
  }
  if (p > 1) {
    std::vector<std::int32_t> other = calib;
    if (me == 1) other[5] = other[5] == 1 ? 2 : 1;
    const std::string m = message_of([&] { rcpu::mpi::prune_models(dense, other, {configs[0]}, comm); });
    check(m.find("rank 1 was given another calibration") != std::string::npos,
          "another calibration on rank 1: every rank throws (" + m + ")");
    PipelineOptions big = configs[0];
    big.chunk_windows = 8;  // 2 chunks of 9 windows
    const std::string m2 = message_of([&] { rcpu::mpi::prune_models(dense, calib, {big}, comm); });
    check((p <= 2) == (m2 == "no exception") && (p <= 2 || m2.find("need at least") != std::string::npos),
          "fewer chunks than ranks is refused on every rank, and only then (" + m2 + ")");
  }
  return finish();
}
