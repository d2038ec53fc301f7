// Tests of rcpu/model/export.hpp on a tiny random LLaMA (no data file): the uniform-GQA layouts and
// their exactness, rounding of kept units (rcpu::rounded_keep), llama / deci export read back
// bit for bit (per-layer sizes, biases), and the loader's refusals of what it cannot represent.
#include <functional>
#include <string>
#include <vector>

#include <rcpu/io/gguf_writer.hpp>
#include <rcpu/model/export.hpp>
#include <rcpu/selection.hpp>

#include "random_llama.hpp"
#include "support.hpp"

using rcpu::Index;
using rcpu::model::GqaFix;
using rcpu::model::LlamaConfig;
using rcpu::model::LlamaLayer;
using rcpu::model::LlamaModel;

namespace {

// 2 layers, d 16, 6 query heads over 3 KV heads of 4, ffn 12, untied head.
LlamaModel ex_model(std::uint32_t seed, Index d = 16, bool tied = false) {
  LlamaConfig c;
  c.n_layers = 2;
  c.d_model = d;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 4;
  c.ffn = 12;
  c.vocab = 19;
  c.n_rot = 4;
  c.rope_base = 100.0;
  c.context = 64;
  return rcpu_test::random_llama(c, seed, tied);
}

std::vector<std::int32_t> ex_ids(Index n) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) ids[std::size_t(i)] = std::int32_t((i * 7 + 3) % 19);
  return ids;
}

LlamaModel ex_reload(const rcpu::io::GgufWriter& w) { return LlamaModel::from_gguf(rcpu::io::GgufFile::from_buffer(w.to_bytes())); }

}  // namespace

TEST_CASE("export: uniform GQA layouts", "[export]") {
  using rcpu::model::plan_uniform_gqa;
  // Groups of 3, 3 and 2 query heads.
  const std::vector<Index> uneven = {0, 0, 0, 1, 1, 1, 2, 2};
  auto u = plan_uniform_gqa(uneven, 3, GqaFix::pad_queries);
  CHECK((u.group == 3 && u.heads == 9 && u.kv_heads == 3 && u.zero_heads == 1 && u.kv_copies == 0));
  u = plan_uniform_gqa(uneven, 3, GqaFix::duplicate_kv);
  CHECK((u.group == 1 && u.heads == 8 && u.kv_heads == 8 && u.zero_heads == 0 && u.kv_copies == 5));
  u = plan_uniform_gqa(uneven, 3, GqaFix::cheapest);
  CHECK((u.group == 3 && u.heads + u.kv_heads == 12));
  // Groups of 4 and 1: groups of 2 (one KV copy, one zero head) beat both pure fixes.
  u = plan_uniform_gqa({0, 0, 0, 0, 1}, 2, GqaFix::cheapest);
  CHECK((u.group == 2 && u.heads == 6 && u.kv_heads == 3 && u.zero_heads == 1 && u.kv_copies == 1));
  // Already uniform: unchanged; an unused KV head (none of its query heads left) is not written.
  u = plan_uniform_gqa({0, 0, 2, 2}, 3, GqaFix::cheapest);
  CHECK((u.group == 2 && u.heads == 4 && u.kv_heads == 2 && !u.changed()));
  CHECK_THROWS_AS(plan_uniform_gqa({0, 3}, 3, GqaFix::cheapest), rcpu::invalid_argument);
  CHECK_THROWS_AS(plan_uniform_gqa({}, 3, GqaFix::cheapest), rcpu::invalid_argument);
  CHECK(rcpu::model::gqa_fix_from_string("duplicate_kv") == GqaFix::duplicate_kv);
  CHECK_THROWS_AS(rcpu::model::gqa_fix_from_string("pad"), rcpu::invalid_argument);
}

TEST_CASE("export: a layer made uniform computes the same function", "[export]") {
  LlamaModel m = ex_model(3);
  // Layer 0 keeps heads 0, 1, 2 (KV 0), 3 (KV 1) and 5 (KV 2): groups of 3, 1, 1.
  m.layer(0).keep_heads({0, 1, 2, 3, 5}, true);
  m.layer(1).keep_heads({1, 4, 5}, true);  // groups of 1 and 2
  CHECK_FALSE(rcpu::model::has_uniform_gqa(m.layer(0)));
  const std::vector<std::int32_t> ids = ex_ids(16);
  const Eigen::MatrixXf ref = m.logits(ids, 8);
  for (GqaFix fix : {GqaFix::cheapest, GqaFix::pad_queries, GqaFix::duplicate_kv}) {
    INFO(rcpu::model::to_string(fix));
    LlamaModel u = m;
    for (Index l = 0; l < 2; ++l) u.layer(l) = rcpu::model::make_uniform_gqa(m.layer(l), fix);
    for (Index l = 0; l < 2; ++l) CHECK(rcpu::model::has_uniform_gqa(u.layer(l)));
    u.validate();
    CHECK(rcpu_test::rel_diff(u.logits(ids, 8), ref) < 1e-6);
    // And through a GGUF file.
    rcpu::model::ExportOptions o;
    o.gqa_fix = fix;
    rcpu::model::ExportReport rep;
    const LlamaModel back = ex_reload(rcpu::model::gguf_writer(m, nullptr, o, &rep));
    CHECK(rep.architecture == "deci");
    CHECK(rcpu_test::rel_diff(back.logits(ids, 8), ref) < 1e-6);
    CHECK(back.layer(0).n_heads() == rep.attention[0].heads);
    CHECK(back.parameter_count() == rep.parameters);
  }
}

TEST_CASE("export: rounding kept units to hardware multiples", "[export]") {
  using rcpu::rounded_keep;
  CHECK(rounded_keep(1536, 1229, 1, 64) == 1216);
  CHECK(rounded_keep(1536, 1248, 1, 64) == 1280);  // a tie keeps more
  CHECK(rounded_keep(9, 7, 64, 128) == 8);         // heads of 64: an even count
  CHECK(rounded_keep(172, 129, 1, 32) == 128);
  CHECK(rounded_keep(172, 172, 1, 32) == 172);     // nothing removed: stays dense
  CHECK(rounded_keep(172, 129, 1, 0) == 129);
  CHECK(rounded_keep(5, 3, 1, 7) == 3);             // no multiple of 7 up to 5
  CHECK(rounded_keep(100, 2, 1, 32) == 32);         // at least one block
}

TEST_CASE("export: llama when uniform, deci with per-layer sizes and biases, read back bit for bit", "[export]") {
  const std::vector<std::int32_t> ids = ex_ids(24);
  // Dense: llama.
  rcpu::model::ExportReport rep;
  const LlamaModel dense = ex_model(5);
  rcpu::io::GgufWriter w = rcpu::model::gguf_writer(dense, nullptr, {}, &rep);
  CHECK(rep.architecture == "llama");
  const LlamaModel dense_back = ex_reload(w);
  CHECK(dense_back.logits(ids, 8) == dense.logits(ids, 8));

  LlamaModel p = ex_model(5);
  p.layer(0).keep_heads({0, 1, 2, 3}, true);  // groups {0,1}, {2,3}: uniform, 2 KV heads
  p.layer(1).keep_heads({4, 5}, true);        // one group of 2: 1 KV head
  p.layer(0).keep_channels({1, 3, 5, 7, 9, 11});
  p.layer(1).keep_channels({0, 1, 2, 3, 4, 5, 6, 7, 8});
  p.layer(1).bo = Eigen::VectorXf::LinSpaced(16, -1.0f, 1.0f);
  p.layer(0).b_down = Eigen::VectorXf::Constant(16, 0.25f);
  const rcpu::io::GgufWriter wp = rcpu::model::gguf_writer(p, nullptr, {}, &rep);
  CHECK(rep.architecture == "deci");
  const rcpu::io::GgufFile f = rcpu::io::GgufFile::from_buffer(wp.to_bytes());
  CHECK(f.get("deci.attention.head_count").ints() == std::vector<std::int64_t>{4, 2});
  CHECK(f.get("deci.attention.head_count_kv").ints() == std::vector<std::int64_t>{2, 1});
  CHECK(f.get("deci.feed_forward_length").ints() == std::vector<std::int64_t>{6, 9});
  CHECK(f.get_int("deci.attention.key_length", 0) == 4);
  CHECK(f.find_tensor("blk.1.attn_output.bias") != nullptr);
  CHECK(f.find_tensor("blk.0.ffn_down.bias") != nullptr);
  CHECK(f.find_tensor("blk.0.attn_output.bias") == nullptr);
  const LlamaModel back = LlamaModel::from_gguf(f);
  CHECK(back.logits(ids, 8) == p.logits(ids, 8));
  CHECK(back.layer(1).bo == p.layer(1).bo);
  CHECK(back.parameter_count() == p.parameter_count());
}

TEST_CASE("export and loader: what llama.cpp or rcpu cannot represent is refused", "[export]") {
  const LlamaModel m = ex_model(9);
  rcpu::model::ExportOptions o;
  o.type = rcpu::io::GgmlType::q4_k;
  CHECK_THROWS_AS(rcpu::model::gguf_writer(m, nullptr, o), rcpu::invalid_argument);
  // d = 16: rows of 16 values cannot be Q8_0 blocks; refused without the F16 fallback, F16 with it.
  o.type = rcpu::io::GgmlType::q8_0;
  o.fallback_f16 = false;
  CHECK_THROWS_AS(rcpu::model::gguf_writer(m, nullptr, o), rcpu::invalid_argument);
  o.fallback_f16 = true;
  rcpu::model::ExportReport rep;
  const LlamaModel back = ex_reload(rcpu::model::gguf_writer(m, nullptr, o, &rep));
  CHECK(rep.f16_fallback.size() == 2 + 2 * 7);  // embedding, output, 7 weights per layer
  CHECK(back.n_layers() == 2);

  // The loader: a deci file whose per-layer arrays are wrong, and biases rcpu has no place for.
  const auto with = [&](const std::function<void(rcpu::io::GgufWriter&)>& change) {
    LlamaModel p = m;
    p.layer(1).keep_channels({0, 1, 2});
    rcpu::io::GgufWriter w = rcpu::model::gguf_writer(p, nullptr, {});
    change(w);
    const rcpu::io::GgufFile f = rcpu::io::GgufFile::from_buffer(w.to_bytes());
    try {
      LlamaModel::from_gguf(f);
    } catch (const rcpu::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(with([](rcpu::io::GgufWriter&) {}) == "no error");
  CHECK(with([](rcpu::io::GgufWriter& w) {
          w.set("deci.feed_forward_length", rcpu::io::GgufValue::make_int_array(rcpu::io::GgufValueType::int32, {12}));
        }).find("has 1 entries") != std::string::npos);
  CHECK(with([](rcpu::io::GgufWriter& w) {
          w.set("deci.feed_forward_length", rcpu::io::GgufValue::make_int_array(rcpu::io::GgufValueType::int32, {12, 0}));
        }).find("not supported") != std::string::npos);
  CHECK(with([](rcpu::io::GgufWriter& w) {
          w.set("deci.attention.head_count_kv", rcpu::io::GgufValue::make_int_array(rcpu::io::GgufValueType::int32, {4, 3}));
        }).find("not a multiple of head_count_kv") != std::string::npos);
  CHECK(with([](rcpu::io::GgufWriter& w) {
          w.add_tensor("blk.0.attn_q.bias", rcpu::io::GgmlType::f32, {24}, std::vector<float>(24, 0.0f));
        }).find("biases are not supported") != std::string::npos);
  CHECK(with([](rcpu::io::GgufWriter& w) { w.set_string("general.architecture", "mistral"); }).find("expected 'llama' or 'deci'") !=
        std::string::npos);
  CHECK(with([](rcpu::io::GgufWriter& w) {
          w.add_tensor("rope_freqs.weight", rcpu::io::GgmlType::f32, {2}, {1.0f, 1.0f});
        }).find("RoPE frequency factors") != std::string::npos);

  // Export refuses what llama.cpp would not load, before writing anything.
  const auto refuses = [&](const LlamaModel& model, const rcpu::model::ExportOptions& opt, const char* says) {
    try {
      (void)rcpu::model::gguf_writer(model, nullptr, opt);
    } catch (const rcpu::invalid_argument& e) {
      return std::string(e.what()).find(says) != std::string::npos;
    }
    return false;
  };
  LlamaConfig partial = m.config();
  partial.n_rot = 2;  // llama.cpp's llama and deci rotate every dimension of a head
  const LlamaModel half_rope = LlamaModel::from_weights(partial, m.embedding(), m.layers(), m.output_norm(), m.output_weight());
  CHECK(refuses(half_rope, {}, "rotates 2 of 4"));
  LlamaConfig no_ctx = m.config();
  no_ctx.context = 0;
  const LlamaModel unknown_ctx = LlamaModel::from_weights(no_ctx, m.embedding(), m.layers(), m.output_norm(), m.output_weight());
  CHECK(refuses(unknown_ctx, {}, "context length is unknown"));
  rcpu::model::ExportOptions own;
  own.metadata = {{"deci.block_count", rcpu::io::GgufValue::make_uint(rcpu::io::GgufValueType::uint32, 9)}};
  CHECK(refuses(m, own, "written by export itself"));
  rcpu::model::ExportOptions nested;
  nested.metadata = {{"x.nested", rcpu::io::GgufValue::make_array(rcpu::io::GgufValueType::array,
                                                                  {rcpu::io::GgufValue::make_string_array({"a"})})}};
  CHECK(refuses(m, nested, "array of arrays"));
  rcpu::model::ExportOptions forced;
  forced.architecture = "llama";
  LlamaModel uneven = m;
  uneven.layer(1).keep_channels({0, 1, 2});
  CHECK(refuses(uneven, forced, "needs equal layer sizes"));
  LlamaModel huge = ex_model(9, 64);
  huge.layer(0).w_up(3, 5) = 1e5f;
  rcpu::model::ExportOptions f16;
  f16.type = rcpu::io::GgmlType::f16;
  CHECK(refuses(huge, f16, "beyond F16's range"));
}

TEST_CASE("export: metadata from the source file, quantized weights, a tied head, a model changed too late", "[export]") {
  const LlamaModel m = ex_model(11, 64, true);  // d 64: every weight fits Q8_0 / Q4_0 blocks
  // A source file with the keys a real one has, and some that describe the file, not the model.
  rcpu::io::GgufWriter src;
  src.set_string("general.architecture", "llama").set_string("general.name", "Tiny").set_u32("general.file_type", 15);
  src.set_string("general.quantized_by", "someone").set_string("general.size_label", "1M");
  src.set("tokenizer.ggml.tokens", rcpu::io::GgufValue::make_string_array({"<s>", "a", "b"}));
  src.set_u32("tokenizer.ggml.bos_token_id", 0);
  src.set_u32("llama.context_length", 2048).set_u32("llama.block_count", 99).set_f32("llama.rope.scaling.factor", 1.0f);
  src.set_u32("split.count", 2).set_string("quantize.imatrix.file", "x.dat").set_string("rcpu.method", "old");
  src.add_tensor("x", rcpu::io::GgmlType::f32, {1}, {0.0f});
  const rcpu::io::GgufFile source = rcpu::io::GgufFile::from_buffer(src.to_bytes());
  LlamaModel p = m;
  p.layer(0).keep_channels({0, 1, 2, 3});  // deci: the llama.* keys move to deci.*
  rcpu::model::ExportOptions o;
  o.type = rcpu::io::GgmlType::q8_0;
  o.fallback_f16 = false;  // o_proj rows (6 heads x 4 = 24) and down_proj rows (12, 4) cannot be Q8_0
  CHECK_THROWS_AS(rcpu::model::gguf_writer(p, &source, o), rcpu::invalid_argument);
  o.fallback_f16 = true;
  rcpu::model::ExportReport rep;
  const rcpu::io::GgufFile f = rcpu::io::GgufFile::from_buffer(rcpu::model::gguf_writer(p, &source, o, &rep).to_bytes());
  CHECK(rep.f16_fallback == std::vector<std::string>{"blk.0.attn_output.weight", "blk.0.ffn_down.weight",
                                                     "blk.1.attn_output.weight", "blk.1.ffn_down.weight"});
  CHECK(f.get_string("general.architecture", "") == "deci");
  CHECK(f.get_string("general.name", "") == "Tiny");
  CHECK(f.get_int("general.file_type", -1) == 7);
  CHECK_FALSE(f.has("general.quantized_by"));
  CHECK_FALSE(f.has("general.size_label"));
  CHECK(*f.find("tokenizer.ggml.tokens") == *source.find("tokenizer.ggml.tokens"));
  CHECK(f.get_int("tokenizer.ggml.bos_token_id", -1) == 0);
  CHECK(f.get_int("deci.context_length", 0) == 64);  // the model's own, not the source's 2048
  CHECK(f.get_int("deci.block_count", 0) == 2);
  CHECK(f.has("deci.rope.scaling.factor"));
  for (const char* k : {"llama.context_length", "split.count", "quantize.imatrix.file", "rcpu.method"}) CHECK_FALSE(f.has(k));
  CHECK(f.get("rcpu.layer.0.written_heads").ints() == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  CHECK(f.get_string("rcpu.export.gqa_fix", "") == "cheapest");
  CHECK(f.find_tensor("output.weight") == nullptr);  // tied: the embedding serves as the head
  CHECK(f.tensor("blk.1.attn_q.weight").type == rcpu::io::GgmlType::q8_0);
  const LlamaModel back = LlamaModel::from_gguf(f);
  CHECK(back.config().tied_output);
  CHECK(back.parameter_count() == rep.parameters);
  const Eigen::MatrixXf& Wq = p.layer(1).wq;
  const Eigen::MatrixXf Wt = Wq.transpose();
  std::vector<std::uint8_t> q(rcpu::io::ggml_bytes(rcpu::io::GgmlType::q8_0, std::uint64_t(Wq.size())));
  rcpu::io::quantize(rcpu::io::GgmlType::q8_0, Wt.data(), std::uint64_t(Wq.size()), q.data());
  Eigen::MatrixXf deq(Wq.cols(), Wq.rows());
  rcpu::io::dequantize(rcpu::io::GgmlType::q8_0, q.data(), q.size(), deq.data(), std::uint64_t(Wq.size()));
  CHECK(back.layer(1).wq == deq.transpose());
  // Without a context length of its own, the model takes the source's.
  LlamaConfig c0 = p.config();
  c0.context = 0;
  const LlamaModel p0 = LlamaModel::from_weights(c0, p.embedding(), p.layers(), p.output_norm());
  CHECK(rcpu::io::GgufFile::from_buffer(rcpu::model::gguf_writer(p0, &source, {}).to_bytes()).get_int("deci.context_length", 0) ==
        2048);

  // The writer reads the model when it writes: a weight whose shape changed meanwhile is refused.
  LlamaModel changing = m;
  const rcpu::io::GgufWriter w = rcpu::model::gguf_writer(changing, nullptr, {});
  changing.layer(1).w_down = Eigen::MatrixXf::Zero(64, 40);
  CHECK_THROWS_AS(w.to_bytes(), rcpu::invalid_argument);
}
