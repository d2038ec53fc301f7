// The pruning pipeline (rcpu/model/pipeline.hpp) end to end on the real stories260K model
// (../shared/data/stories260K.gguf: 5 layers, d 64, 8 query / 4 KV heads of 8, FFN 172):
//   - ratio 0 reproduces the dense model and its perplexity exactly;
//   - every pruned model has exactly the parameter count its kept heads, KV heads and channels imply;
//   - every method, GQA rule, allocation and o_proj rotation runs and gives a finite perplexity;
//   - the statistics-based compensation equals the raw-activation reference (rcpu::reference) on the
//     first two layers, the second one fed by the pruned first layer (the paper's sequential protocol);
//   - the pruned pass that feeds the next layer equals LlamaModel::forward_layer on the pruned layer;
//   - configurations run in lockstep give bit-for-bit the results of separate runs, also with dense
//     and pruned-prefix statistics mixed (PipelineOptions::statistics), which agree on layer 0 only;
//   - pruned models exported to GGUF read back the same (export_checks.hpp).
// No check asserts which method wins.
//
// Its own main(): prints "SKIPPED: ..." and returns 77 (CTest: skipped) when the model is absent. The data
// folder is RCPU_DATA_DIR if set, else ../shared/data beside the source tree.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <rcpu/io/gguf.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/tokenizer.hpp>
#include <rcpu/reference.hpp>

#include "export_checks.hpp"
#include "../standalone_checks.hpp"

namespace {

using rcpu::Index;
using rcpu::model::PipelineOptions;
using rcpu_test::check;


double rel_diff(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return INFINITY;
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

// A few sentences in the style of TinyStories, tokenized by the model: enough for 8 windows of 32.
const char* const kText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
    "friends. One day, she saw a big red ball under a tree. She ran to the ball and kicked it very high. The "
    "ball flew over the fence and into the garden of an old man. Lily was scared, but she knocked on his door. "
    "The old man smiled and gave her the ball back. He said, \"You can play here any time you want.\" Lily was "
    "so happy. She thanked the man and ran back to her friends. They played with the ball until the sun went "
    "down. Then Lily went home and told her mom about the kind old man. Her mom hugged her and said, \"You "
    "were very brave today.\" Lily smiled and went to sleep, dreaming of the park, the ball and her new friend. "
    "The next morning, Tom the dog woke her up. He wanted to go for a walk. Lily put on her shoes and took him "
    "outside. The sky was blue and the birds were singing. Tom found a stick and brought it to Lily. She threw "
    "it far away and Tom ran after it. They were both very happy.";

PipelineOptions base(double ratio, rcpu::Compensation c, rcpu::Score s = rcpu::Score::rcpu) {
  PipelineOptions o;
  o.ratio = ratio;
  o.compensation = c;
  o.score = s;
  o.seq_len = 32;
  o.chunk_windows = 3;  // several chunks per pass, so that chunking is exercised
  o.relative_lambda = 0.01;
  return o;
}

// Parameters implied by the kept sets alone, counted independently of the pipeline's own bookkeeping.
Index expected_parameters(const rcpu::model::LlamaModel& dense, const rcpu::model::PipelineResult& r) {
  const auto& c = dense.config();
  const Index d = c.d_model, hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  Index n = dense.embedding().size() + (c.tied_output ? 0 : dense.output_weight().size()) + dense.output_norm().size();
  for (std::size_t l = 0; l < r.layers.size(); ++l) {
    const auto& o = r.layers[l];
    std::vector<char> kv_used(std::size_t(c.n_kv_heads), 0);
    for (Index h : o.kept_heads) kv_used[std::size_t(h / group)] = 1;
    Index kv = 0;
    for (char u : kv_used) kv += u;
    const Index h = Index(o.kept_heads.size()), f = Index(o.kept_channels.size());
    n += 2 * d;                       // the two norms
    n += 2 * h * hd * d;              // q rows, o columns
    n += 2 * kv * hd * d;             // k, v rows
    n += 3 * f * d;                   // gate, up rows, down columns
    const auto& L = r.model.layer(Index(l));
    n += L.bo.size() + L.b_down.size();  // biases a compensation added (checked below to be d or 0)
    check((L.bo.size() == 0 || L.bo.size() == d) && (L.b_down.size() == 0 || L.b_down.size() == d), "bias sizes");
  }
  return n;
}

// Raw inputs of o_proj and down_proj of layer l on `hidden` (dense layer l of `m`).
void raw_inputs(const rcpu::model::LlamaModel& m, Index l, const Eigen::MatrixXf& hidden, Index seq, Eigen::MatrixXd& Xo,
                Eigen::MatrixXd& Xd) {
  rcpu::model::ForwardTaps taps;
  taps.o_proj_input = [&](Index, const Eigen::MatrixXf& x) { Xo = x.cast<double>(); };
  taps.down_proj_input = [&](Index, const Eigen::MatrixXf& x) { Xd = x.cast<double>(); };
  Eigen::MatrixXf h = hidden;
  m.forward_layer(l, h, seq, &taps);
}

}  // namespace

int main() {
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  const std::string model_path = data + "/stories260K.gguf";
  if (!std::ifstream(model_path)) {
    std::cout << "SKIPPED: " << model_path << " not found (see docs/models.md; set RCPU_DATA_DIR)\n";
    return 77;
  }
  try {
    const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(model_path);
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    const rcpu::model::LlamaModel dense = rcpu::model::LlamaModel::from_gguf(file);
    const auto& cfg = dense.config();
    const Index seq = 32;
    const std::vector<std::int32_t> ids = tok.encode(kText);
    check(Index(ids.size()) >= 8 * seq, "the text gives at least 8 windows of 32 tokens (" + std::to_string(ids.size()) + ")");
    // Calibration: 6 random windows; evaluation: the first 4 aligned windows.
    const std::vector<std::int32_t> calib =
        rcpu::model::gather_windows(ids, rcpu::model::random_windows(0, Index(ids.size()), seq, 6, 1), seq);
    rcpu::model::PerplexityOptions po;
    po.window = seq;
    po.windows = {0, 1, 2, 3};
    const double dense_ppl = rcpu::model::perplexity(dense, ids, po).perplexity;
    std::cout << "dense perplexity on 4 windows of 32: " << dense_ppl << "\n";

    // 1. Ratio 0: the dense model, bit for bit, whatever the method.
    for (rcpu::Compensation c : {rcpu::Compensation::rotation, rcpu::Compensation::proximal_ridge, rcpu::Compensation::bias}) {
      const auto r = rcpu::model::prune_model(dense, calib, base(0.0, c));
      const double ppl = rcpu::model::perplexity(r.model, ids, po).perplexity;
      check(ppl == dense_ppl, std::string("ratio 0 (") + rcpu::to_string(c) + ") reproduces the dense perplexity exactly");
      check(r.parameters == dense.parameter_count() && r.parameters_dense == r.parameters, "ratio 0 keeps every parameter");
      bool same = true;
      for (Index l = 0; l < cfg.n_layers; ++l) {
        const auto& a = r.model.layer(l);
        const auto& b = dense.layer(l);
        same = same && a.wo == b.wo && a.w_down == b.w_down && a.wq == b.wq && a.wk == b.wk && a.w_gate == b.w_gate &&
               a.bo.size() == 0 && a.b_down.size() == 0;
      }
      check(same, "ratio 0 leaves every weight as it is");
    }

    // 2 + 3. Every method runs; parameter counts are exactly those of the kept sets.
    std::vector<PipelineOptions> all;
    for (rcpu::Compensation c :
         {rcpu::Compensation::none, rcpu::Compensation::bias, rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale,
          rcpu::Compensation::rotation_bias, rcpu::Compensation::least_squares, rcpu::Compensation::proximal_ridge,
          rcpu::Compensation::rotation_ridge})
      for (double ratio : {0.1, 0.3}) all.push_back(base(ratio, c));
    for (rcpu::Score s : {rcpu::Score::magnitude, rcpu::Score::wanda_sp, rcpu::Score::wanda_sp_rcpu, rcpu::Score::flap,
                          rcpu::Score::rcpu_paper})
      all.push_back(base(0.2, rcpu::Compensation::rotation, s));
    for (rcpu::model::GqaRule g : {rcpu::model::GqaRule::kv_groups, rcpu::model::GqaRule::balanced}) {
      PipelineOptions o = base(0.5, rcpu::Compensation::rotation);
      o.gqa = g;
      all.push_back(o);
    }
    {
      PipelineOptions o = base(0.3, rcpu::Compensation::rotation);
      o.o_proj_rotation = rcpu::model::OprojRotation::per_head;
      all.push_back(o);
      o.compensation_options.procrustes.proper_rotation = true;
      all.push_back(o);
      o = base(0.3, rcpu::Compensation::rotation);
      o.compensate_attention = false;
      all.push_back(o);
      o = base(0.3, rcpu::Compensation::rotation);
      o.compensate_mlp = false;
      all.push_back(o);
      o = base(0.3, rcpu::Compensation::bias, rcpu::Score::flap);
      o.allocation = rcpu::model::Allocation::flap_adaptive;
      all.push_back(o);
      o = base(0.3, rcpu::Compensation::rotation);
      o.allocation = rcpu::model::Allocation::flap_adaptive;
      all.push_back(o);
      o = base(0.2, rcpu::Compensation::rotation);
      o.attention_ratio = 0.5;
      o.mlp_ratio = 0.0;
      all.push_back(o);
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      PipelineOptions& o = all[i];
      o.label = "config " + std::to_string(i) + " (" + rcpu::to_string(o.score) + ", " + rcpu::to_string(o.compensation) +
                ", ratio " + std::to_string(o.ratio) + ", " + rcpu::model::to_string(o.gqa) + ", " +
                rcpu::model::to_string(o.allocation) + ")";
      const auto r = rcpu::model::prune_model(dense, calib, o);
      const double ppl = rcpu::model::perplexity(r.model, ids, po).perplexity;
      check(std::isfinite(ppl) && ppl > 1, o.label + ": finite perplexity (" + std::to_string(ppl) + ")");
      check(r.parameters == expected_parameters(dense, r), o.label + ": parameter count " + std::to_string(r.parameters) +
                                                               " equals the count implied by the kept sets");
      check(r.parameters < r.parameters_dense || o.ratio == 0, o.label + ": the pruned model is smaller");
      r.model.validate();
      bool reports = true;
      for (const auto& L : r.layers) {
        if (L.attention_pruned) reports = reports && L.attention.info != rcpu::Info::no_convergence && L.attention.tokens == 6 * seq;
        if (L.mlp_pruned) reports = reports && L.mlp.info != rcpu::Info::no_convergence && L.mlp.tokens == 6 * seq;
      }
      check(reports, o.label + ": every pruned module has a report on the 192 calibration tokens");
      if (o.allocation == rcpu::model::Allocation::uniform && o.gqa == rcpu::model::GqaRule::query_heads)
        for (const auto& L : r.layers) {
          const Index hr = rcpu::removed_count(cfg.n_heads, o.heads_ratio()),
                      cr = rcpu::removed_count(cfg.ffn, o.channels_ratio());
          check(L.heads == cfg.n_heads - hr && L.channels == cfg.ffn - cr, o.label + ": uniform counts per layer");
        }
      if (o.gqa == rcpu::model::GqaRule::kv_groups)
        for (const auto& L : r.layers) check(L.heads == 4 && L.kv_heads == 2, o.label + ": two whole KV groups removed");
      if (o.gqa == rcpu::model::GqaRule::balanced)
        for (const auto& L : r.layers) check(L.heads == 4 && L.kv_heads == 4, o.label + ": one head per group removed");
    }

    // 4. Statistics-based compensation = raw-activation reference, layers 0 and 1 (layer 1 fed by the
    //    pruned layer 0). Ridge with an absolute lambda so that the reference uses the same one.
    for (rcpu::Compensation c : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale,
                                 rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge,
                                 rcpu::Compensation::bias}) {
      PipelineOptions o = base(0.3, c);
      o.relative_lambda = 0;
      o.compensation_options.lambda = 5.0;
      const auto r = rcpu::model::prune_model(dense, calib, o);
      Eigen::MatrixXf h = dense.embed(calib);
      for (Index l = 0; l < 2; ++l) {
        Eigen::MatrixXd Xo, Xd;
        raw_inputs(dense, l, h, seq, Xo, Xd);
        const auto& L = r.model.layer(l);
        const auto& out = r.layers[std::size_t(l)];
        const auto ro = rcpu::reference::compensate(dense.layer(l).wo.cast<double>(), Eigen::VectorXd(), Xo,
                                                    rcpu::expand_groups(out.kept_heads, cfg.head_dim), c, o.compensation_options);
        const auto rd = rcpu::reference::compensate(dense.layer(l).w_down.cast<double>(), Eigen::VectorXd(), Xd,
                                                    out.kept_channels, c, o.compensation_options);
        const double eo = rel_diff(L.wo.cast<double>(), ro.weight), ed = rel_diff(L.w_down.cast<double>(), rd.weight);
        const std::string what = std::string(rcpu::to_string(c)) + ", layer " + std::to_string(l);
        check(eo < 2e-5, what + ": o_proj weight equals the raw-activation reference (rel. diff " + std::to_string(eo) + ")");
        check(ed < 2e-5, what + ": down_proj weight equals the raw-activation reference (rel. diff " + std::to_string(ed) + ")");
        if (c == rcpu::Compensation::bias) {
          check(rel_diff(L.bo.cast<double>(), ro.bias) < 1e-5 && rel_diff(L.b_down.cast<double>(), rd.bias) < 1e-5,
                what + ": biases equal the reference's");
        }
        // Reports need the Gram, which the pipeline only gathers for Gram-based methods.
        if (rcpu::needs_gram(c))
          check(std::abs(out.attention.after.relative_error - ro.report.after.relative_error) < 1e-6 &&
                    std::abs(out.mlp.after.relative_error - rd.report.after.relative_error) < 1e-6,
                what + ": reports equal the reference's");
        r.model.forward_layer(l, h, seq);  // the pruned layer feeds the next one
      }
    }
    // 4b. relative_lambda sets each ridge's strength per layer and module, rotation_ridge as proximal_ridge:
    //     lambda = relative_lambda * sum_{j in K} sum_t x_tj^2 / k, here from layer 0's raw inputs.
    for (rcpu::Compensation c : {rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge}) {
      const PipelineOptions o = base(0.3, c);
      const auto r = rcpu::model::prune_model(dense, calib, o);
      Eigen::MatrixXd Xo, Xd;
      raw_inputs(dense, 0, dense.embed(calib), seq, Xo, Xd);
      const auto& out = r.layers[0];
      const auto cols = rcpu::expand_groups(out.kept_heads, cfg.head_dim);
      const double lo = o.relative_lambda * Xo(Eigen::all, cols).squaredNorm() / double(cols.size());
      const double ld =
          o.relative_lambda * Xd(Eigen::all, out.kept_channels).squaredNorm() / double(out.kept_channels.size());
      check(std::abs(out.lambda_attention - lo) <= 1e-6 * lo && std::abs(out.lambda_mlp - ld) <= 1e-6 * ld,
            std::string(rcpu::to_string(c)) + ": the ridge strength is relative_lambda times the kept channels' mean energy");
    }
    {  // The per-head block rotation against Y Z^T from raw activations.
      PipelineOptions o = base(0.3, rcpu::Compensation::rotation);
      o.o_proj_rotation = rcpu::model::OprojRotation::per_head;
      const auto r = rcpu::model::prune_model(dense, calib, o);
      Eigen::MatrixXd Xo, Xd;
      raw_inputs(dense, 0, dense.embed(calib), seq, Xo, Xd);
      const auto cols = rcpu::expand_groups(r.layers[0].kept_heads, cfg.head_dim);
      const Eigen::MatrixXd W = dense.layer(0).wo.cast<double>(), WK = W(Eigen::all, cols);
      const Eigen::MatrixXd Y = W * Xo.transpose(), Z = WK * Xo(Eigen::all, cols).transpose();
      const auto br = rcpu::model::block_procrustes(Y * Z.transpose(), cfg.head_dim);
      check(rel_diff(r.model.layer(0).wo.cast<double>(), br.q * WK) < 2e-5, "per-head rotation equals the raw reference");
    }

    // 5. The pruned pass (reusing the dense attention) equals forward_layer on the pruned layer.
    {
      const auto r = rcpu::model::prune_model(dense, calib, base(0.3, rcpu::Compensation::rotation_bias));
      const Eigen::MatrixXf h0 = dense.embed(calib);
      rcpu::model::detail::DensePass pass;
      rcpu::model::detail::run_dense_pass(dense.config(), dense.layer(0), 0, h0, seq, 2, false, false, true, pass);
      Eigen::MatrixXf a = h0, b = h0;
      rcpu::model::detail::run_pruned_pass(r.model.layer(0), pass.attention, cfg.rms_eps, seq, 2, a);
      r.model.forward_layer(0, b, seq);
      const double e = rel_diff(a.cast<double>(), b.cast<double>());
      check(e < 1e-5, "pruned pass equals LlamaModel::forward_layer (rel. diff " + std::to_string(e) + ")");
    }

    // 6. Lockstep = separate runs, bit for bit; at a ratio that removes no head, methods that differ only
    //    on o_proj share everything.
    {
      std::vector<PipelineOptions> cs;
      for (double ratio : {0.1, 0.3}) {
        PipelineOptions rot = base(ratio, rcpu::Compensation::rotation), ph = rot, down = rot, none = rot;
        ph.o_proj_rotation = rcpu::model::OprojRotation::per_head;
        down.compensate_attention = false;
        none.compensation = rcpu::Compensation::none;
        cs = {rot, ph, down, none};
        const auto together = rcpu::model::prune_models(dense, calib, cs);
        bool same = true;
        for (std::size_t i = 0; i < cs.size(); ++i) {
          const auto alone = rcpu::model::prune_model(dense, calib, cs[i]);
          for (Index l = 0; l < cfg.n_layers; ++l) {
            const auto& x = together[i].model.layer(l);
            const auto& y = alone.model.layer(l);
            same = same && x.wo == y.wo && x.w_down == y.w_down && x.head_ids == y.head_ids && x.channel_ids == y.channel_ids;
          }
        }
        check(same, "lockstep at ratio " + std::to_string(ratio) + " equals separate runs bit for bit");
        // 8 heads at 10%: none removed, so rotation, per-head and down-only are one model.
        if (ratio == 0.1) {
          check(together[1].layers[0].shared_with == 4 && together[1].layers[2].shared_with == 3 &&
                    together[2].layers[4].shared_with == 3 && together[3].layers[1].shared_with == 1,
                "at 10% (no head removed) the three rotation variants share their states");
          check(rcpu::model::perplexity(together[0].model, ids, po).perplexity ==
                    rcpu::model::perplexity(together[1].model, ids, po).perplexity,
                "at 10% the per-head rotation is the full rotation");
        }
      }
    }

    // 6b. Statistics from the dense model (FLAP's code) vs from the pruned prefix (the default): layer 0
    //     agrees, later layers differ; mixed in lockstep, each equals its separate run.
    {
      std::vector<PipelineOptions> cs;
      for (rcpu::Compensation c : {rcpu::Compensation::bias, rcpu::Compensation::rotation})
        for (rcpu::model::StatisticsSource src :
             {rcpu::model::StatisticsSource::pruned_prefix, rcpu::model::StatisticsSource::dense}) {
          PipelineOptions o = base(0.2, c, c == rcpu::Compensation::bias ? rcpu::Score::flap : rcpu::Score::rcpu);
          o.statistics = src;
          o.label = std::string(c == rcpu::Compensation::bias ? "FLAP" : "RCPU rotation") + " 20%, " +
                    rcpu::model::to_string(src) + " statistics";
          cs.push_back(o);
        }
      const auto together = rcpu::model::prune_models(dense, calib, cs);
      for (std::size_t i = 0; i < cs.size(); ++i) {
        const auto alone = rcpu::model::prune_model(dense, calib, cs[i]);
        bool same = true;
        for (Index l = 0; l < cfg.n_layers; ++l) {
          const auto& x = together[i].model.layer(l);
          const auto& y = alone.model.layer(l);
          same = same && x.wo == y.wo && x.w_down == y.w_down && x.bo == y.bo && x.b_down == y.b_down &&
                 x.head_ids == y.head_ids && x.channel_ids == y.channel_ids;
        }
        check(same, cs[i].label + ": mixed lockstep equals the separate run bit for bit");
        std::cout << cs[i].label << ": perplexity " << rcpu::model::perplexity(alone.model, ids, po).perplexity << "\n";
      }
      for (std::size_t i = 0; i < cs.size(); i += 2) {
        const auto& p = together[i].model;
        const auto& d = together[i + 1].model;
        check(p.layer(0).wo == d.layer(0).wo && p.layer(0).w_down == d.layer(0).w_down &&
                  p.layer(0).channel_ids == d.layer(0).channel_ids && p.layer(0).head_ids == d.layer(0).head_ids,
              cs[i].label + ": layer 0 is the same with dense statistics");
        bool differ = true;
        for (Index l = 1; l < cfg.n_layers; ++l) {
          const auto& x = p.layer(l);
          const auto& y = d.layer(l);
          const bool same = x.channel_ids == y.channel_ids && x.head_ids == y.head_ids && x.wo == y.wo &&
                            x.w_down == y.w_down && x.bo == y.bo && x.b_down == y.b_down;
          differ = differ && !same;
        }
        check(differ, cs[i].label + ": every later layer differs with dense statistics");
      }
    }

    // 7. Bad options are refused before any work.
    {
      PipelineOptions o = base(0.2, rcpu::Compensation::proximal_ridge);
      o.o_proj_rotation = rcpu::model::OprojRotation::per_head;
      bool threw = false;
      try {
        rcpu::model::prune_model(dense, calib, o);
      } catch (const rcpu::invalid_argument&) {
        threw = true;
      }
      check(threw, "per-head rotation with a ridge is refused");
      threw = false;
      try {
        rcpu::model::prune_model(dense, std::vector<std::int32_t>(calib.begin(), calib.begin() + 40), base(0.2, rcpu::Compensation::rotation));
      } catch (const rcpu::invalid_argument&) {
        threw = true;
      }
      check(threw, "a calibration that is not whole windows is refused");
      threw = false;
      o = base(0.2, rcpu::Compensation::rotation);
      o.allocation = rcpu::model::Allocation::flap_adaptive;
      o.gqa = rcpu::model::GqaRule::kv_groups;
      try {
        rcpu::model::prune_model(dense, calib, o);
      } catch (const rcpu::invalid_argument&) {
        threw = true;
      }
      check(threw, "flap_adaptive with kv_groups is refused");
    }
    // Export to GGUF and back (export_checks.hpp).
    export_checks::run(file, dense, ids, calib, seq, check);
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  return rcpu_test::finish();
}
