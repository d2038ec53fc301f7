// PipelineOptions::statistics (rcpu/model/pipeline.hpp) on a random LLaMA model (no data file):
//   (a) with StatisticsSource::dense, every layer's kept heads and channels and its compensated o_proj
//       and down_proj equal an independent oracle: statistics collected from the dense model's
//       forward taps (LlamaModel::forward_hidden with ForwardTaps), then each layer pruned on its own
//       with unit_scores(), keep_top() and compensate();
//   (b) pruned_prefix (the default) is unchanged: layer l's statistics come from the dense layer l on
//       the outputs of the pruned layers 0..l-1 (oracle: forward_layer of the pruned model);
//   (c) dense-statistics and pruned-prefix configurations mixed in one prune_models() call equal
//       prune_model() of each alone, bit for bit, and all dense-statistics ones share one branch;
//   (d) on layer 0 both modes agree exactly; on every later layer they differ.
#include <rcpu/model/llama.hpp>
#include <rcpu/model/pipeline.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "../model/random_llama.hpp"
#include "support.hpp"

using rcpu::Index;
using rcpu::model::LlamaModel;
using rcpu::model::PipelineOptions;
using rcpu::model::PipelineResult;
using rcpu::model::StatisticsSource;
using rcpu_test::rel_diff;

namespace {

rcpu::model::LlamaConfig small_config() {
  rcpu::model::LlamaConfig c;
  c.n_layers = 4;
  c.d_model = 24;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 4;
  c.ffn = 40;
  c.vocab = 37;
  c.n_rot = 4;
  c.rms_eps = 1e-5f;
  c.rope_base = 100.0;
  return c;
}

const Index kSeq = 16, kWindows = 8;  // 128 calibration tokens: more than d (24) and ffn (40)

std::vector<std::int32_t> calibration_ids(const rcpu::model::LlamaConfig& c) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(kSeq * kWindows));
  std::uint32_t x = 12345;
  for (auto& t : ids) {
    x = x * 1664525u + 1013904223u;
    t = std::int32_t((x >> 8) % std::uint32_t(c.vocab));
  }
  return ids;
}

PipelineOptions options(double ratio, rcpu::Compensation comp, rcpu::Score score, StatisticsSource src,
                        Index chunk_windows = 3) {
  PipelineOptions o;
  o.ratio = ratio;
  o.compensation = comp;
  o.score = score;
  o.statistics = src;
  o.seq_len = kSeq;
  o.chunk_windows = chunk_windows;
  o.label = std::string(rcpu::to_string(score)) + "/" + rcpu::to_string(comp) + "/" + rcpu::model::to_string(src);
  return o;
}

// Every weight and index of two layers, bit for bit.
bool same_layer(const rcpu::model::LlamaLayer& a, const rcpu::model::LlamaLayer& b) {
  const auto eq = [](const auto& x, const auto& y) {
    return x.rows() == y.rows() && x.cols() == y.cols() && (x.size() == 0 || x == y);
  };
  return a.head_ids == b.head_ids && a.head_kv == b.head_kv && a.channel_ids == b.channel_ids && eq(a.wq, b.wq) &&
         eq(a.wk, b.wk) && eq(a.wv, b.wv) && eq(a.wo, b.wo) && eq(a.bo, b.bo) && eq(a.w_gate, b.w_gate) &&
         eq(a.w_up, b.w_up) && eq(a.w_down, b.w_down) && eq(a.b_down, b.b_down) && eq(a.attn_norm, b.attn_norm) &&
         eq(a.ffn_norm, b.ffn_norm);
}

bool same_model(const PipelineResult& a, const PipelineResult& b) {
  if (a.model.n_layers() != b.model.n_layers() || a.parameters != b.parameters) return false;
  for (Index l = 0; l < a.model.n_layers(); ++l)
    if (!same_layer(a.model.layer(l), b.model.layer(l))) return false;
  return true;
}

// What the oracle prunes from one layer's statistics (uniform ratio, GQA rule query_heads).
struct OracleLayer {
  std::vector<Index> kept_heads, kept_channels;
  rcpu::Compensated<double> o_proj, down_proj;
};

OracleLayer oracle_layer(const rcpu::model::LlamaLayer& L, const rcpu::Statistics<float>& so,
                         const rcpu::Statistics<float>& sd, const PipelineOptions& o) {
  OracleLayer r;
  const Index H = L.n_heads(), F = L.ffn(), hd = L.head_dim;
  const Eigen::VectorXd hs = rcpu::unit_scores(L.wo, so, o.score, hd, rcpu::GroupReduce::automatic, rcpu::Module::attention);
  r.kept_heads = rcpu::keep_top(hs, H - rcpu::removed_count(H, o.ratio));
  r.o_proj = rcpu::compensate(Eigen::MatrixXd(L.wo.cast<double>()), so, rcpu::expand_groups(r.kept_heads, hd),
                              o.compensation, o.compensation_options);
  const Eigen::VectorXd cs = rcpu::unit_scores(L.w_down, sd, o.score, 1, rcpu::GroupReduce::automatic, rcpu::Module::mlp);
  r.kept_channels = rcpu::keep_top(cs, F - rcpu::removed_count(F, o.ratio));
  r.down_proj = rcpu::compensate(Eigen::MatrixXd(L.w_down.cast<double>()), sd, r.kept_channels, o.compensation,
                                 o.compensation_options);
  return r;
}

// The oracle's layer against the pipeline's: kept sets exactly, weights and biases within `tol`.
void check_layer(const OracleLayer& want, const rcpu::model::LlamaLayer& got, double tol) {
  CHECK(got.head_ids == want.kept_heads);
  CHECK(got.channel_ids == want.kept_channels);
  // The pipeline stores the double compensation as float.
  const auto f = [](const auto& m) { return Eigen::MatrixXf(m.template cast<float>()); };
  CHECK(rel_diff(got.wo, f(want.o_proj.weight)) <= tol);
  CHECK(rel_diff(got.w_down, f(want.down_proj.weight)) <= tol);
  CHECK(got.bo.size() == want.o_proj.bias.size());
  CHECK(got.b_down.size() == want.down_proj.bias.size());
  if (got.bo.size() != 0 && got.bo.size() == want.o_proj.bias.size()) CHECK(rel_diff(got.bo, f(want.o_proj.bias)) <= tol);
  if (got.b_down.size() != 0 && got.b_down.size() == want.down_proj.bias.size())
    CHECK(rel_diff(got.b_down, f(want.down_proj.bias)) <= tol);
}

}  // namespace

TEST_CASE("statistics source: names round-trip, bad values are refused", "[pipeline][statistics]") {
  using rcpu::model::statistics_source_from_string;
  for (StatisticsSource s : {StatisticsSource::pruned_prefix, StatisticsSource::dense})
    CHECK(statistics_source_from_string(rcpu::model::to_string(s)) == s);
  CHECK(statistics_source_from_string("pruned") == StatisticsSource::pruned_prefix);
  CHECK_THROWS_AS(statistics_source_from_string("both"), rcpu::invalid_argument);
  CHECK(PipelineOptions().statistics == StatisticsSource::pruned_prefix);
  const LlamaModel m = rcpu_test::random_llama(small_config(), 3, false);
  PipelineOptions o = options(0.25, rcpu::Compensation::rotation, rcpu::Score::rcpu, StatisticsSource::dense);
  o.statistics = static_cast<StatisticsSource>(7);
  CHECK_THROWS_AS(rcpu::model::prune_model(m, calibration_ids(m.config()), o), rcpu::invalid_argument);
}

TEST_CASE("dense statistics: every layer equals the oracle on the dense model's forward taps", "[pipeline][statistics]") {
  const LlamaModel dense = rcpu_test::random_llama(small_config(), 11, false);
  const auto& cfg = dense.config();
  const std::vector<std::int32_t> calib = calibration_ids(cfg);
  // The oracle's statistics: one forward pass of the whole dense model, every window at once.
  std::vector<rcpu::Statistics<float>> so, sd;
  for (Index l = 0; l < cfg.n_layers; ++l) {
    so.emplace_back(cfg.n_heads * cfg.head_dim);
    sd.emplace_back(cfg.ffn);
  }
  rcpu::model::ForwardTaps taps;
  taps.o_proj_input = [&](Index l, const Eigen::MatrixXf& x) { so[std::size_t(l)].update(x); };
  taps.down_proj_input = [&](Index l, const Eigen::MatrixXf& x) { sd[std::size_t(l)].update(x); };
  (void)dense.forward_hidden(calib, kSeq, &taps);

  struct Case {
    rcpu::Compensation comp;
    rcpu::Score score;
  };
  for (const Case& k : {Case{rcpu::Compensation::rotation, rcpu::Score::rcpu}, Case{rcpu::Compensation::bias, rcpu::Score::flap},
                        Case{rcpu::Compensation::rotation_bias, rcpu::Score::wanda_sp}}) {
    // One chunk of all windows: the pipeline's statistics then see exactly the oracle's updates.
    for (Index chunk : {kWindows, Index(3)}) {
      const PipelineOptions o = options(0.34, k.comp, k.score, StatisticsSource::dense, chunk);
      INFO(o.label << ", chunks of " << chunk << " windows");
      const PipelineResult r = rcpu::model::prune_model(dense, calib, o);
      // Bit for bit in one chunk; in chunks the sums are added in another order.
      const double tol = chunk == kWindows ? 0.0 : 1e-5;
      for (Index l = 0; l < cfg.n_layers; ++l) {
        INFO("layer " << l);
        const OracleLayer want = oracle_layer(dense.layer(l), so[std::size_t(l)], sd[std::size_t(l)], o);
        REQUIRE(Index(want.kept_heads.size()) == cfg.n_heads - 2);  // 0.34 * 6 heads: 2 removed
        check_layer(want, r.model.layer(l), tol);
        CHECK(r.layers[std::size_t(l)].kept_heads == want.kept_heads);
        CHECK(r.layers[std::size_t(l)].kept_channels == want.kept_channels);
        CHECK(r.layers[std::size_t(l)].seconds_forward == 0.0);
      }
    }
  }
}

TEST_CASE("pruned-prefix statistics (the default): layer l sees the pruned layers 0..l-1", "[pipeline][statistics]") {
  const LlamaModel dense = rcpu_test::random_llama(small_config(), 11, false);
  const auto& cfg = dense.config();
  const std::vector<std::int32_t> calib = calibration_ids(cfg);
  for (rcpu::Compensation comp : {rcpu::Compensation::rotation, rcpu::Compensation::bias}) {
    PipelineOptions def = options(0.34, comp, rcpu::Score::rcpu, StatisticsSource::pruned_prefix);
    def.statistics = PipelineOptions().statistics;
    const PipelineResult r = rcpu::model::prune_model(dense, calib, def);
    const PipelineResult explicit_prefix =
        rcpu::model::prune_model(dense, calib, options(0.34, comp, rcpu::Score::rcpu, StatisticsSource::pruned_prefix));
    CHECK(same_model(r, explicit_prefix));
    // Oracle: the dense layer l on the outputs of the pipeline's pruned layers 0..l-1 (forward_layer;
    // the pipeline's own pruned pass agrees with it to rounding).
    Eigen::MatrixXf h = dense.embed(calib);
    for (Index l = 0; l < cfg.n_layers; ++l) {
      INFO(rcpu::to_string(comp) << ", layer " << l);
      rcpu::Statistics<float> so(cfg.n_heads * cfg.head_dim), sd(cfg.ffn);
      const rcpu::model::ForwardTaps taps = rcpu::model::statistics_taps(l, &so, &sd);
      Eigen::MatrixXf x = h;
      dense.forward_layer(l, x, kSeq, &taps);
      check_layer(oracle_layer(dense.layer(l), so, sd, def), r.model.layer(l), 1e-4);
      r.model.forward_layer(l, h, kSeq);
    }
  }
}

TEST_CASE("dense and pruned-prefix statistics mixed in lockstep equal separate runs", "[pipeline][statistics]") {
  const LlamaModel dense = rcpu_test::random_llama(small_config(), 5, false);
  const auto& cfg = dense.config();
  const std::vector<std::int32_t> calib = calibration_ids(cfg);
  const StatisticsSource D = StatisticsSource::dense, P = StatisticsSource::pruned_prefix;
  std::vector<PipelineOptions> cs = {
      options(0.34, rcpu::Compensation::rotation, rcpu::Score::rcpu, D),
      options(0.34, rcpu::Compensation::rotation, rcpu::Score::rcpu, P),
      options(0.25, rcpu::Compensation::bias, rcpu::Score::flap, D),
      options(0.25, rcpu::Compensation::bias, rcpu::Score::flap, P),
      options(0.0, rcpu::Compensation::rotation, rcpu::Score::rcpu, D),  // ratio 0: the dense layers
      options(0.0, rcpu::Compensation::rotation, rcpu::Score::rcpu, P),
      options(0.34, rcpu::Compensation::none, rcpu::Score::rcpu, P),
      options(0.3, rcpu::Compensation::bias, rcpu::Score::flap, D)};
  cs.back().allocation = rcpu::model::Allocation::flap_adaptive;
  cs.back().label += "/adaptive";
  {
    PipelineOptions ridge = options(0.34, rcpu::Compensation::proximal_ridge, rcpu::Score::rcpu, D);
    ridge.relative_lambda = 0.01;
    cs.push_back(ridge);
  }
  const std::vector<PipelineResult> together = rcpu::model::prune_models(dense, calib, cs);
  REQUIRE(together.size() == cs.size());
  Index n_dense = 0;
  for (const PipelineOptions& o : cs) n_dense += o.statistics == D ? 1 : 0;
  for (std::size_t i = 0; i < cs.size(); ++i) {
    INFO(cs[i].label);
    const PipelineResult alone = rcpu::model::prune_model(dense, calib, cs[i]);
    CHECK(same_model(together[i], alone));
    CHECK(together[i].options.statistics == cs[i].statistics);
    CHECK(together[i].layers.front().shared_with == Index(cs.size()));  // layer 0: one branch for all
    // Every dense-statistics configuration stays in the one dense branch.
    if (cs[i].statistics == D)
      for (std::size_t l = 1; l < together[i].layers.size(); ++l) CHECK(together[i].layers[l].shared_with == n_dense);
  }
  // Ratio 0 with dense statistics is the dense model.
  for (Index l = 0; l < cfg.n_layers; ++l) CHECK(same_layer(together[4].model.layer(l), dense.layer(l)));
  // Dense-statistics configurations alone, in lockstep (the branch then runs in place).
  const std::vector<PipelineOptions> only_dense = {cs[0], cs[2], cs[7]};
  const std::vector<PipelineResult> d = rcpu::model::prune_models(dense, calib, only_dense);
  CHECK(same_model(d[0], together[0]));
  CHECK(same_model(d[1], together[2]));
  CHECK(same_model(d[2], together[7]));
}

TEST_CASE("layer 0 agrees in both modes; later layers differ", "[pipeline][statistics]") {
  const LlamaModel dense = rcpu_test::random_llama(small_config(), 11, false);
  const auto& cfg = dense.config();
  const std::vector<std::int32_t> calib = calibration_ids(cfg);
  for (rcpu::Compensation comp : {rcpu::Compensation::rotation, rcpu::Compensation::bias}) {
    INFO(rcpu::to_string(comp));
    const rcpu::Score score = comp == rcpu::Compensation::bias ? rcpu::Score::flap : rcpu::Score::rcpu;
    const PipelineResult a = rcpu::model::prune_model(dense, calib, options(0.34, comp, score, StatisticsSource::pruned_prefix));
    const PipelineResult b = rcpu::model::prune_model(dense, calib, options(0.34, comp, score, StatisticsSource::dense));
    CHECK(same_layer(a.model.layer(0), b.model.layer(0)));
    for (Index l = 1; l < cfg.n_layers; ++l) {
      INFO("layer " << l);
      const auto& x = a.model.layer(l);
      const auto& y = b.model.layer(l);
      CHECK_FALSE(same_layer(x, y));
      // The compensation differs beyond rounding even where the kept sets agree: the rotated weights,
      // or FLAP's bias (its weights are the kept columns as they are).
      if (comp == rcpu::Compensation::bias) {
        CHECK(rel_diff(x.b_down, y.b_down) > 1e-4);
        CHECK(rel_diff(x.bo, y.bo) > 1e-4);
      } else {
        if (x.channel_ids == y.channel_ids) CHECK(rel_diff(x.w_down, y.w_down) > 1e-4);
        if (x.head_ids == y.head_ids) CHECK(rel_diff(x.wo, y.wo) > 1e-4);
      }
    }
  }
}
