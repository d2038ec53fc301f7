// Tests of rcpu/model/llama.hpp and perplexity.hpp on a tiny random LLaMA: the batched float forward pass
// against a plain double-precision reference written token by token, causality, batching, the o_proj /
// down_proj taps, replacing a layer by a pruned one (heads, KV heads, channels, biases), loading from a
// GGUF file, and perplexity against cross-entropy computed from the logits.
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <rcpu/model/llama.hpp>
#include <rcpu/model/perplexity.hpp>

#include "gguf_builder.hpp"
#include "random_llama.hpp"
#include "support.hpp"

using rcpu::Index;
using rcpu::model::LlamaConfig;
using rcpu::model::LlamaLayer;
using rcpu::model::LlamaModel;

namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn = 12;
  c.vocab = 23;
  c.n_rot = 4;
  c.rms_eps = 1e-5f;
  c.rope_base = 100.0;  // small base: large angles within a short window
  return c;
}

LlamaModel tiny_model(bool tied = false, std::uint32_t seed = 7) {
  return rcpu_test::random_llama(tiny_config(), seed, tied);
}

using MatD = Eigen::MatrixXd;

MatD rms(const MatD& h, const Eigen::VectorXf& w, double eps) {
  MatD out = h;
  for (Index t = 0; t < h.rows(); ++t) {
    const double inv = 1.0 / std::sqrt(h.row(t).squaredNorm() / static_cast<double>(h.cols()) + eps);
    out.row(t) = (h.row(t) * inv).cwiseProduct(w.cast<double>().transpose());
  }
  return out;
}

struct Trace {
  std::vector<MatD> o_in, down_in;
};

// Plain double-precision LLaMA on ONE window: every token, head and position spelled out.
MatD reference_logits(const LlamaModel& model, const std::vector<std::int32_t>& ids, Trace* trace = nullptr) {
  const LlamaConfig& c = model.config();
  const Index T = static_cast<Index>(ids.size());
  MatD h(T, c.d_model);
  for (Index t = 0; t < T; ++t) h.row(t) = model.embedding().row(ids[static_cast<std::size_t>(t)]).cast<double>();
  for (Index l = 0; l < model.n_layers(); ++l) {
    const LlamaLayer& L = model.layer(l);
    const Index hd = L.head_dim;
    MatD x = rms(h, L.attn_norm, c.rms_eps);
    MatD q = x * L.wq.cast<double>().transpose(), k = x * L.wk.cast<double>().transpose(),
         v = x * L.wv.cast<double>().transpose();
    const auto rope = [&](MatD& m, Index heads) {
      for (Index t = 0; t < T; ++t)
        for (Index hh = 0; hh < heads; ++hh)
          for (Index i = 0; i < c.n_rot / 2; ++i) {
            const double a = static_cast<double>(t) * std::pow(c.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(c.n_rot));
            const double x0 = m(t, hh * hd + 2 * i), x1 = m(t, hh * hd + 2 * i + 1);
            m(t, hh * hd + 2 * i) = x0 * std::cos(a) - x1 * std::sin(a);
            m(t, hh * hd + 2 * i + 1) = x0 * std::sin(a) + x1 * std::cos(a);
          }
    };
    rope(q, L.n_heads());
    rope(k, L.n_kv_heads());
    MatD att = MatD::Zero(T, L.n_heads() * hd);
    for (Index hh = 0; hh < L.n_heads(); ++hh) {
      const Index g = L.head_kv[static_cast<std::size_t>(hh)];
      for (Index t = 0; t < T; ++t) {
        std::vector<double> p(static_cast<std::size_t>(t + 1));
        double mx = -1e300;
        for (Index s = 0; s <= t; ++s) {
          double dot = 0;
          for (Index e = 0; e < hd; ++e) dot += q(t, hh * hd + e) * k(s, g * hd + e);
          p[static_cast<std::size_t>(s)] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[static_cast<std::size_t>(s)]);
        }
        double z = 0;
        for (auto& e : p) z += (e = std::exp(e - mx));
        for (Index s = 0; s <= t; ++s)
          for (Index e = 0; e < hd; ++e) att(t, hh * hd + e) += p[static_cast<std::size_t>(s)] / z * v(s, g * hd + e);
      }
    }
    if (trace) trace->o_in.push_back(att);
    h += att * L.wo.cast<double>().transpose();
    if (L.bo.size()) h.rowwise() += L.bo.cast<double>().transpose();
    x = rms(h, L.ffn_norm, c.rms_eps);
    const MatD g = x * L.w_gate.cast<double>().transpose(), u = x * L.w_up.cast<double>().transpose();
    MatD a = g;
    for (Index i = 0; i < a.size(); ++i) a(i) = g(i) / (1.0 + std::exp(-g(i))) * u(i);
    if (trace) trace->down_in.push_back(a);
    h += a * L.w_down.cast<double>().transpose();
    if (L.b_down.size()) h.rowwise() += L.b_down.cast<double>().transpose();
  }
  return rms(h, model.output_norm(), c.rms_eps) * model.output_weight().cast<double>().transpose();
}

std::vector<std::int32_t> window_ids(Index T, int salt) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(T));
  for (Index t = 0; t < T; ++t) ids[static_cast<std::size_t>(t)] = static_cast<std::int32_t>((t * 5 + salt * 3 + 1) % 23);
  return ids;
}

std::vector<std::int32_t> concat(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  std::vector<std::int32_t> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

TEST_CASE("llama: batched forward pass equals a token-by-token double reference") {
  for (bool tied : {false, true}) {
    const LlamaModel model = tiny_model(tied);
    CHECK(model.config().tied_output == tied);
    const Index T = 7;
    const auto a = window_ids(T, 0), b = window_ids(T, 1);
    const Eigen::MatrixXf logits = model.logits(concat(a, b), T);
    REQUIRE(logits.rows() == 2 * T);
    REQUIRE(logits.cols() == 23);
    CHECK(rcpu_test::rel_diff(logits.topRows(T), reference_logits(model, a)) < 2e-6);
    CHECK(rcpu_test::rel_diff(logits.bottomRows(T), reference_logits(model, b)) < 2e-6);
    // Windows are independent: each alone gives the same rows.
    CHECK(rcpu_test::rel_diff(model.logits(b, T), logits.bottomRows(T).eval()) < 1e-6);
  }
}

TEST_CASE("llama: attention is causal within a window") {
  const LlamaModel model = tiny_model();
  const Index T = 6;
  auto a = window_ids(T, 2);
  const Eigen::MatrixXf base = model.logits(a, T);
  a[4] = (a[4] + 1) % 23;
  const Eigen::MatrixXf changed = model.logits(a, T);
  CHECK(rcpu_test::rel_diff(changed.topRows(4), base.topRows(4).eval()) < 1e-7);
  CHECK(rcpu_test::rel_diff(changed.bottomRows(2), base.bottomRows(2).eval()) > 1e-3);
}

TEST_CASE("llama: taps see the o_proj and down_proj inputs of every layer") {
  const LlamaModel model = tiny_model();
  const Index T = 5;
  const auto a = window_ids(T, 3);
  Trace trace;
  reference_logits(model, a, &trace);
  std::vector<Eigen::MatrixXf> o_in, down_in;
  rcpu::model::ForwardTaps taps;
  taps.o_proj_input = [&](Index l, const Eigen::MatrixXf& x) {
    CHECK(l == static_cast<Index>(o_in.size()));
    o_in.push_back(x);
  };
  taps.down_proj_input = [&](Index, const Eigen::MatrixXf& x) { down_in.push_back(x); };
  model.forward_hidden(a, T, &taps);
  REQUIRE(o_in.size() == 2);
  REQUIRE(down_in.size() == 2);
  for (std::size_t l = 0; l < 2; ++l) {
    CHECK(o_in[l].rows() == T);
    CHECK(o_in[l].cols() == 16);
    CHECK(down_in[l].cols() == 12);
    CHECK(rcpu_test::rel_diff(o_in[l], trace.o_in[l]) < 2e-6);
    CHECK(rcpu_test::rel_diff(down_in[l], trace.down_in[l]) < 2e-6);
  }
  // Feeding rcpu::Statistics through the helper: only the chosen layer is accumulated.
  rcpu::Statistics<float> so(16), sd(12);
  const rcpu::model::ForwardTaps st = rcpu::model::statistics_taps<double>(1, &so, &sd);
  model.forward_hidden(concat(a, a), T, &st);
  CHECK(so.tokens() == 2 * T);
  CHECK(sd.tokens() == 2 * T);
  CHECK((so.sum() - 2.0 * trace.o_in[1].colwise().sum().transpose()).norm() < 1e-4 * (1 + so.sum().norm()));
}

TEST_CASE("llama: a pruned layer (heads, KV heads, channels) equals the dense one with the units zeroed") {
  const LlamaModel dense = tiny_model();
  const Index T = 6, hd = 4;
  const auto ids = concat(window_ids(T, 4), window_ids(T, 5));

  // Keeping every head in another order, with wo's columns following, changes nothing.
  LlamaModel perm = dense;
  perm.layer(0).keep_heads({2, 0, 3, 1});
  CHECK(perm.layer(0).head_ids == std::vector<Index>{2, 0, 3, 1});
  CHECK(perm.layer(0).head_kv == std::vector<Index>{1, 0, 1, 0});
  CHECK(rcpu_test::rel_diff(perm.logits(ids, T), dense.logits(ids, T)) < 1e-6);

  // Dropping heads 2 and 3 (both of KV head 1) and MLP channels: removes KV head 1 too.
  LlamaModel pruned = dense;
  LlamaModel zeroed = dense;
  pruned.layer(1).keep_heads({0, 1});
  pruned.layer(1).keep_channels({0, 2, 3, 5, 7, 8, 11});
  CHECK(pruned.layer(1).n_heads() == 2);
  CHECK(pruned.layer(1).n_kv_heads() == 1);
  CHECK(pruned.layer(1).wq.rows() == 2 * hd);
  CHECK(pruned.layer(1).wo.cols() == 2 * hd);
  CHECK(pruned.layer(1).ffn() == 7);
  CHECK(pruned.layer(1).channel_ids == std::vector<Index>{0, 2, 3, 5, 7, 8, 11});
  pruned.validate();
  zeroed.layer(1).wo.middleCols(2 * hd, 2 * hd).setZero();
  for (Index j : {1, 4, 6, 9, 10}) zeroed.layer(1).w_down.col(j).setZero();
  CHECK(rcpu_test::rel_diff(pruned.logits(ids, T), zeroed.logits(ids, T)) < 1e-6);
  CHECK(pruned.parameter_count() < dense.parameter_count());

  // One head from each KV group: both KV heads stay, any number of query heads per group works.
  LlamaModel mixed = dense;
  mixed.layer(0).keep_heads({1, 2});
  CHECK(mixed.layer(0).n_kv_heads() == 2);
  CHECK(mixed.layer(0).head_kv == std::vector<Index>{0, 1});
  LlamaModel mixed_zero = dense;
  mixed_zero.layer(0).wo.middleCols(0, hd).setZero();
  mixed_zero.layer(0).wo.middleCols(3 * hd, hd).setZero();
  CHECK(rcpu_test::rel_diff(mixed.logits(ids, T), mixed_zero.logits(ids, T)) < 1e-6);
  // The pruned model against the token-by-token reference, with output biases (bias compensation).
  mixed.layer(0).bo = Eigen::VectorXf::Constant(16, 0.25f);
  mixed.layer(1).b_down = Eigen::VectorXf::LinSpaced(16, -0.5f, 0.5f);
  CHECK(rcpu_test::rel_diff(mixed.logits(window_ids(T, 4), T), reference_logits(mixed, window_ids(T, 4))) < 2e-6);
  // Keeping the KV head although no query head uses it.
  LlamaModel keep_kv = dense;
  keep_kv.layer(1).keep_heads({0}, false);
  CHECK(keep_kv.layer(1).n_kv_heads() == 2);

  LlamaLayer L = dense.layer(0);
  CHECK_THROWS_AS(L.keep_heads({0, 0}), rcpu::invalid_argument);
  CHECK_THROWS_AS(L.keep_heads({4}), rcpu::invalid_argument);
  CHECK_THROWS_AS(L.keep_channels({}), rcpu::invalid_argument);
  LlamaModel broken = dense;
  broken.layer(0).wo.resize(16, 12);
  CHECK_THROWS_AS(broken.validate(), rcpu::invalid_argument);
}

TEST_CASE("llama: bad inputs throw") {
  const LlamaModel model = tiny_model();
  CHECK_THROWS_AS(model.logits(window_ids(5, 0), 3), rcpu::invalid_argument);  // 5 tokens, windows of 3
  CHECK_THROWS_AS(model.logits(window_ids(4, 0), 0), rcpu::invalid_argument);
  CHECK_THROWS_AS(model.embed({0, 23}), rcpu::invalid_argument);
  CHECK_THROWS_AS(model.embed({-1}), rcpu::invalid_argument);
  Eigen::MatrixXf h(4, 15);
  CHECK_THROWS_AS(model.forward_layer(0, h, 4), rcpu::invalid_argument);
  Eigen::MatrixXf h2(4, 16);
  CHECK_THROWS_AS(model.forward_layer(2, h2, 4), rcpu::invalid_argument);
}

TEST_CASE("llama: from_gguf reads the weights in the PyTorch convention") {
  const LlamaModel ref = tiny_model();
  const LlamaConfig& c = ref.config();
  const auto build = [&](bool with_output, const std::string& arch) {
    rcpu_test::GgufBuilder g;
    g.kv_string("general.architecture", arch).kv_u32("llama.block_count", 2).kv_u32("llama.embedding_length", 16);
    g.kv_u32("llama.attention.head_count", 4).kv_u32("llama.attention.head_count_kv", 2);
    g.kv_u32("llama.feed_forward_length", 12).kv_u32("llama.rope.dimension_count", 4);
    g.kv_f32("llama.rope.freq_base", 100.0f).kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    g.matrix_f32("token_embd.weight", ref.embedding());
    g.vector_f32("output_norm.weight", ref.output_norm());
    if (with_output) g.matrix_f32("output.weight", ref.output_weight());
    for (Index l = 0; l < 2; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const LlamaLayer& L = ref.layer(l);
      g.vector_f32(p + "attn_norm.weight", L.attn_norm).vector_f32(p + "ffn_norm.weight", L.ffn_norm);
      g.matrix_f32(p + "attn_q.weight", L.wq).matrix_f32(p + "attn_k.weight", L.wk).matrix_f32(p + "attn_v.weight", L.wv);
      g.matrix_f32(p + "attn_output.weight", L.wo).matrix_f32(p + "ffn_gate.weight", L.w_gate);
      g.matrix_f32(p + "ffn_up.weight", L.w_up).matrix_f32(p + "ffn_down.weight", L.w_down);
    }
    return g;
  };
  const auto load = [](const rcpu_test::GgufBuilder& g) {
    const auto b = g.build();
    return LlamaModel::from_gguf(rcpu::io::GgufFile::from_memory(b.data(), b.size()));
  };
  const LlamaModel m = load(build(true, "llama"));
  CHECK(m.config().vocab == c.vocab);
  CHECK(m.config().n_kv_heads == 2);
  CHECK(m.config().head_dim == 4);
  CHECK(m.config().rope_base == 100.0);
  CHECK_FALSE(m.config().tied_output);
  CHECK(m.layer(1).wo == ref.layer(1).wo);
  CHECK(m.layer(0).wk == ref.layer(0).wk);
  CHECK(m.layer(1).w_down == ref.layer(1).w_down);
  CHECK(m.layer(0).head_kv == std::vector<Index>{0, 0, 1, 1});
  const auto ids = window_ids(8, 1);
  CHECK(rcpu_test::rel_diff(m.logits(ids, 8), ref.logits(ids, 8)) == 0.0);
  const LlamaModel tied = load(build(false, "llama"));
  CHECK(tied.config().tied_output);
  CHECK(tied.output_weight() == ref.embedding());

  CHECK_THROWS_AS(load(build(true, "gpt2")), rcpu::invalid_argument);
  // A block count the tensor table cannot hold fails before anything is allocated for it.
  rcpu_test::GgufBuilder many = build(true, "llama");
  many.kvs[1] = rcpu_test::GgufBuilder().kv_u32("llama.block_count", 16711424).kvs[0];
  try {
    load(many);
    FAIL("expected an exception");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("block_count = 16711424") != std::string::npos);
  }
  rcpu_test::GgufBuilder missing = build(true, "llama");
  missing.tensors.pop_back();
  CHECK_THROWS_AS(load(missing), rcpu::invalid_argument);
  rcpu_test::GgufBuilder wrong = build(true, "llama");
  wrong.tensors.back().shape = {16, 12};  // ffn_down (16 x 12) stored with the wrong orientation
  try {
    load(wrong);
    FAIL("expected an exception");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("blk.1.ffn_down.weight") != std::string::npos);
  }
}

TEST_CASE("perplexity: exp of the mean cross-entropy over non-overlapping windows") {
  const LlamaModel model = tiny_model();
  const Index T = 8;
  std::vector<std::int32_t> tokens;
  for (int w = 0; w < 5; ++w) tokens = concat(tokens, window_ids(T, w));
  tokens.push_back(3);  // a partial window is dropped
  CHECK(rcpu::model::count_windows(static_cast<Index>(tokens.size()), T) == 5);

  const auto expected = [&](const std::vector<Index>& windows) {
    double sum = 0;
    for (const Index w : windows) {
      const std::vector<std::int32_t> ids(tokens.begin() + w * T, tokens.begin() + (w + 1) * T);
      const MatD z = reference_logits(model, ids);
      for (Index t = 0; t + 1 < T; ++t) {
        const double mx = z.row(t).maxCoeff();
        sum += mx + std::log((z.row(t).array() - mx).exp().sum()) - z(t, ids[static_cast<std::size_t>(t + 1)]);
      }
    }
    return std::exp(sum / static_cast<double>(windows.size() * (T - 1)));
  };
  rcpu::model::PerplexityOptions opt;
  opt.window = T;
  opt.batch = 2;  // 5 windows in batches of 2, 2, 1
  const auto r = rcpu::model::perplexity(model, tokens, opt);
  CHECK(r.windows == 5);
  CHECK(r.tokens_scored == 5 * (T - 1));
  CHECK(r.tokens_processed == 5 * T);
  CHECK(r.window_nll.size() == 5);
  CHECK(std::abs(r.perplexity / expected({0, 1, 2, 3, 4}) - 1) < 1e-5);
  CHECK(std::abs(std::log(r.perplexity) - r.mean_nll) < 1e-12);
  opt.windows = {3, 1};
  const auto s = rcpu::model::perplexity(model, tokens, opt);
  CHECK(std::abs(s.perplexity / expected({3, 1}) - 1) < 1e-5);
  CHECK(std::abs(s.window_nll[0] - r.window_nll[3]) < 1e-5);

  opt.windows = {5};
  CHECK_THROWS_AS(rcpu::model::perplexity(model, tokens, opt), rcpu::invalid_argument);
  opt.windows = {};
  opt.batch = 0;
  CHECK_THROWS_AS(rcpu::model::perplexity(model, tokens, opt), rcpu::invalid_argument);
  opt.batch = 1;
  CHECK_THROWS_AS(rcpu::model::perplexity(model, std::vector<std::int32_t>(7, 1), opt), rcpu::invalid_argument);

  CHECK(rcpu::model::evenly_spaced_windows(10, 4) == std::vector<Index>{0, 2, 5, 7});
  CHECK(rcpu::model::evenly_spaced_windows(3, 5) == std::vector<Index>{0, 1, 2});
}

TEST_CASE("perplexity: the WikiText protocol text joins dataset rows with blank lines") {
  // Rows as Hugging Face datasets yields them: " a\n", "" (blank line), " b\n"; joined with "\n\n".
  CHECK(rcpu::model::wikitext_protocol_text(" a\n \n b\n") == " a\n\n\n\n\n b\n");
  CHECK(rcpu::model::wikitext_protocol_text(" a\r\n b") == " a\n\n\n b");
  CHECK(rcpu::model::wikitext_protocol_text("x\ry") == "x\n\n\ny");
  CHECK(rcpu::model::wikitext_protocol_text("") == "");
}
