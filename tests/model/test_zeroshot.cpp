// rcpu/model/zeroshot.hpp: lm-evaluation-harness's prompt formats, tokenization rule and scoring, and the
// packed scorer against one request at a time.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <rcpu/io/json.hpp>
#include <rcpu/model/zeroshot.hpp>

#include "../io/io_support.hpp"
#include "random_llama.hpp"
#include "support.hpp"

using rcpu::Index;
using rcpu::io::parse_json;
using rcpu::model::ChoiceScore;
using rcpu::model::TokenizedRequest;
using rcpu::model::ZeroShotDoc;
using rcpu::model::make_zeroshot_doc;

namespace {

// A byte-level BPE vocabulary: every byte, plus the given merges (GPT-2 byte alphabet spelling).
rcpu::model::Tokenizer zs_byte_tokenizer(const std::vector<std::string>& merges) {
  const auto spell = [](const std::string& s) {
    std::string out;
    for (const unsigned char c : s) rcpu::detail::append_utf8(out, rcpu::model::detail::byte_to_codepoint()[c]);
    return out;
  };
  std::vector<std::string> tokens{"<|endoftext|>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(spell(std::string(1, static_cast<char>(b))));
  std::vector<std::string> spelled;
  for (const std::string& m : merges) {
    const auto sp = m.find(' ');
    const std::string a = spell(m.substr(0, sp)), b = spell(m.substr(sp + 1));
    spelled.push_back(a + " " + b);
    tokens.push_back(a + b);
  }
  std::vector<std::int32_t> types(tokens.size(), 1);
  types[0] = 3;
  return rcpu::model::Tokenizer::byte_level_bpe(tokens, spelled, rcpu::model::PreTokenizer::gpt2, types);
}

// The oracle: each request alone, as one unpacked window, summing the log-softmax of its continuation.
ChoiceScore zs_score_alone(const rcpu::model::LlamaModel& m, const TokenizedRequest& r) {
  std::vector<std::int32_t> seq = r.context;
  seq.insert(seq.end(), r.continuation.begin(), r.continuation.end());
  const Eigen::MatrixXf logits = m.logits(seq, static_cast<Index>(seq.size()));  // tokens x vocab
  ChoiceScore s;
  s.is_greedy = true;
  for (std::size_t i = r.context.size(); i < seq.size(); ++i) {
    const Eigen::VectorXd z = logits.row(static_cast<Index>(i - 1)).transpose().cast<double>();
    Index arg = 0;
    const double mx = z.maxCoeff(&arg);
    s.loglikelihood += z(seq[i]) - (mx + std::log((z.array() - mx).exp().sum()));
    s.is_greedy = s.is_greedy && arg == seq[i];
    ++s.tokens;
  }
  return s;
}

std::vector<std::string> zs_continuations(const ZeroShotDoc& d) {
  std::vector<std::string> out;
  for (const auto& r : d.requests) out.push_back(r.continuation);
  return out;
}

}  // namespace

TEST_CASE("zeroshot: the prompt formats of lm-evaluation-harness 0.4") {
  SECTION("boolq: passage, question with '?', choices no / yes") {
    const ZeroShotDoc d = make_zeroshot_doc(
        "boolq", parse_json(R"({"question":"is it red","answer":true,"passage":"It is red."})"), 3);
    CHECK(d.doc_id == 3);
    REQUIRE(d.requests.size() == 2);
    CHECK(d.requests[0].context == "It is red.\nQuestion: is it red?\nAnswer:");
    CHECK(d.requests[1].context == d.requests[0].context);
    CHECK(zs_continuations(d) == std::vector<std::string>{" no", " yes"});
    CHECK(d.gold == 1);
    CHECK(make_zeroshot_doc("boolq", parse_json(R"({"question":"q","label":0,"passage":"p"})"), 0).gold == 0);
  }
  SECTION("piqa") {
    const ZeroShotDoc d = make_zeroshot_doc("piqa", parse_json(R"({"goal":"Open a jar","sol1":"Twist.","sol2":"Pull.","label":1})"), 0);
    CHECK(d.requests[0].context == "Question: Open a jar\nAnswer:");
    CHECK(zs_continuations(d) == std::vector<std::string>{" Twist.", " Pull."});
    CHECK(d.choices == std::vector<std::string>{"Twist.", "Pull."});
    CHECK(d.gold == 1);
  }
  SECTION("hellaswag: capitalize(ctx_b), [title], bracket tags, double spaces, label as a string") {
    const ZeroShotDoc d = make_zeroshot_doc(
        "hellaswag",
        parse_json(R"({"activity_label":"Removing ice","ctx_a":"A man [title] scrapes.","ctx_b":"THE Car is","endings":["  goes [step] away.  ","x  [a\n] y"],"label":"1"})"),
        0);
    CHECK(d.requests[0].context == "Removing ice: A man. scrapes. The car is");
    CHECK(d.choices == std::vector<std::string>{"goes away.", "x [a\n] y"});
    CHECK(zs_continuations(d) == std::vector<std::string>{" goes away.", " x [a\n] y"});
    CHECK(d.gold == 1);
  }
  SECTION("winogrande: the option fills the context, the rest is the continuation") {
    const ZeroShotDoc d = make_zeroshot_doc(
        "winogrande",
        parse_json(R"({"sentence":"The cup fit in the bag because _  was small. ","option1":"the cup","option2":"the bag","answer":"2"})"),
        0);
    REQUIRE(d.requests.size() == 2);
    CHECK(d.requests[0].context == "The cup fit in the bag because the cup");
    CHECK(d.requests[1].context == "The cup fit in the bag because the bag");
    CHECK(zs_continuations(d) == std::vector<std::string>{" was small.", " was small."});
    CHECK(d.gold == 1);
  }
  SECTION("arc and openbookqa: gold from the answer key's label") {
    const auto row = parse_json(R"({"question":"Which?","choices":{"text":["x","y","z"],"label":["A","B","C"]},"answerKey":"C"})");
    for (const char* task : {"arc_easy", "arc_challenge"}) {
      const ZeroShotDoc d = make_zeroshot_doc(task, row, 0);
      CHECK(d.requests[0].context == "Question: Which?\nAnswer:");
      CHECK(zs_continuations(d) == std::vector<std::string>{" x", " y", " z"});
      CHECK(d.gold == 2);
    }
    const ZeroShotDoc o = make_zeroshot_doc(
        "openbookqa",
        parse_json(R"({"question_stem":"The sun is","choices":{"text":["hot","cold"],"label":["A","B"]},"answerKey":" B"})"), 0);
    CHECK(o.requests[0].context == "The sun is");
    CHECK(o.gold == 1);
  }
  SECTION("bad documents name the task, the document and the field") {
    try {
      make_zeroshot_doc("piqa", parse_json(R"({"goal":"g","sol1":"a","label":0})"), 7);
      FAIL("no throw");
    } catch (const rcpu::invalid_argument& e) {
      const std::string w = e.what();
      CHECK(w.find("piqa document 7") != std::string::npos);
      CHECK(w.find("sol2") != std::string::npos);
    }
    CHECK_THROWS_AS(make_zeroshot_doc("piqa", parse_json(R"({"goal":"g","sol1":"a","sol2":"b","label":2})"), 0),
                    rcpu::invalid_argument);
    CHECK_THROWS_AS(make_zeroshot_doc("arc_easy", parse_json(R"({"question":"q","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":"E"})"), 0),
                    rcpu::invalid_argument);
    CHECK_THROWS_AS(make_zeroshot_doc("winogrande", parse_json(R"({"sentence":"no blank","option1":"a","option2":"b","answer":"1"})"), 0),
                    rcpu::invalid_argument);
    CHECK_THROWS_AS(make_zeroshot_doc("mmlu", parse_json("{}"), 0), rcpu::invalid_argument);
  }
}

TEST_CASE("zeroshot: Python string helpers behave as Python's") {
  using namespace rcpu::model::detail;
  CHECK(python_strip(" \t\xC2\xA0 a b \n") == "a b");  // U+00A0 is white space to Python
  CHECK(python_strip("   ").empty());
  CHECK(python_replace("a   b", "  ", " ") == "a  b");  // one left-to-right pass, as str.replace
  CHECK(python_capitalize("hELLO World") == "Hello world");
  CHECK(remove_brackets("a [x] b [y\n] c [z") == "a  b [y\n] c [z");
  CHECK(char_count("\xC3\xA9t\xC3\xA9") == 3);
  CHECK(rstrip_length("ab \xE3\x80\x80") == 2);  // U+3000
}

TEST_CASE("zeroshot: requests are tokenized as the harness's _encode_pair") {
  const rcpu::model::Tokenizer tok = zs_byte_tokenizer({"a b"});  // one merge: "ab"
  SECTION("trailing white space of the context moves to the continuation") {
    const TokenizedRequest t = rcpu::model::tokenize_request(tok, {"Answer: ", "yes"});
    CHECK(t.context == tok.encode("Answer:"));
    CHECK(tok.decode(t.continuation) == " yes");
  }
  SECTION("a token across the boundary is dropped from the continuation, as the harness does") {
    // "xabc" -> x, ab, c; "xa" -> x, a: the continuation is whole[2:] = c.
    const TokenizedRequest t = rcpu::model::tokenize_request(tok, {"xa", "bc"});
    CHECK(t.context == tok.encode("xa"));
    REQUIRE(tok.encode("xabc").size() == 3);
    CHECK(t.continuation == std::vector<std::int32_t>{tok.encode("xabc")[2]});
  }
  SECTION("an empty context is the BOS (else EOS) token; a continuation with no token throws") {
    CHECK_THROWS_AS(rcpu::model::tokenize_request(tok, {"", "a"}), rcpu::invalid_argument);  // no BOS, no EOS
    CHECK_THROWS_AS(rcpu::model::tokenize_request(tok, {"xab", ""}), rcpu::invalid_argument);
    CHECK_THROWS_AS(rcpu::model::tokenize_request(tok, {"   ", "a"}), rcpu::invalid_argument);  // no context token
  }
  SECTION("with a BOS: the prefix token, or the continuation's own first token when it is the prefix") {
    std::vector<std::string> pieces{"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "b", "\xE2\x96\x81"};
    auto spm = rcpu::model::Tokenizer::sentencepiece(pieces, {0, 0, 0, -1, -2, -3}, {2, 3, 3, 1, 1, 1});
    spm.set_special_ids(1, 2, 0, true);  // BOS <s>, EOS </s>, UNK <unk>, BOS added
    REQUIRE(spm.bos_id() == 1);
    const TokenizedRequest t = rcpu::model::tokenize_request(spm, {"", "a b"});
    CHECK(t.context == std::vector<std::int32_t>{1});
    CHECK(t.continuation == spm.encode("a b", false));
  }
  SECTION("a request longer than the model's context loses context tokens from the left, as the harness's") {
    TokenizedRequest t{{1, 2, 3, 4, 5}, {6, 7}};
    rcpu::model::truncate_request(t, 10);  // fits: 7 <= 11
    CHECK(t.context.size() == 5);
    rcpu::model::truncate_request(t, 4);   // the model reads (ctx + cont)[-5:][:-1] = 4 5 6 | 7 scored
    CHECK(t.context == std::vector<std::int32_t>{3, 4, 5});
    CHECK(t.continuation == std::vector<std::int32_t>{6, 7});
    TokenizedRequest long_cont{{1}, {2, 3, 4}};
    CHECK_THROWS_AS(rcpu::model::truncate_request(long_cont, 2), rcpu::invalid_argument);
  }
}

TEST_CASE("zeroshot: packing shares the common prefix") {
  SECTION("one context, two continuations") {
    const auto p = rcpu::model::pack_requests({{{1, 2, 3}, {4, 5}}, {{1, 2, 3}, {6}}});
    CHECK(p.ids == std::vector<std::int32_t>{1, 2, 3, 4});
    CHECK(p.position == std::vector<std::int32_t>{0, 1, 2, 3});
    CHECK(p.branch == std::vector<std::int32_t>{0, 0, 0, 1});
    CHECK(p.score_rows == std::vector<std::vector<Index>>{{2, 3}, {2}});
    CHECK(p.target == std::vector<std::vector<std::int32_t>>{{4, 5}, {6}});
  }
  SECTION("a prefix that runs into the continuations, and identical requests") {
    // Both continuations start with 4: the shared prefix holds it; the first scored row is still the
    // context's last (row 2), the second (4 -> 5 / 4 -> 6) is the shared row 3.
    auto p = rcpu::model::pack_requests({{{1, 2, 3}, {4, 5, 9}}, {{1, 2, 3}, {4, 6}}});
    CHECK(p.ids == std::vector<std::int32_t>{1, 2, 3, 4, 5});
    CHECK(p.branch == std::vector<std::int32_t>{0, 0, 0, 0, 1});
    CHECK(p.score_rows == std::vector<std::vector<Index>>{{2, 3, 4}, {2, 3}});
    CHECK(p.target == std::vector<std::vector<std::int32_t>>{{4, 5, 9}, {4, 6}});
    p = rcpu::model::pack_requests({{{1, 2}, {3, 4}}, {{1, 2}, {3, 4}}});
    CHECK(p.ids == std::vector<std::int32_t>{1, 2, 3});  // all shared, both branches empty
    CHECK(p.score_rows == std::vector<std::vector<Index>>{{1, 2}, {1, 2}});
  }
  SECTION("two contexts (WinoGrande), one continuation") {
    const auto p = rcpu::model::pack_requests({{{1, 2, 7}, {9, 9}}, {{1, 2, 8}, {9, 9}}});
    CHECK(p.ids == std::vector<std::int32_t>{1, 2, 7, 9, 8, 9});
    CHECK(p.position == std::vector<std::int32_t>{0, 1, 2, 3, 2, 3});
    CHECK(p.branch == std::vector<std::int32_t>{0, 0, 1, 1, 2, 2});
    CHECK(p.score_rows == std::vector<std::vector<Index>>{{2, 3}, {4, 5}});
  }
}

TEST_CASE("zeroshot: packed, batched scoring equals each request alone") {
  rcpu::model::LlamaConfig c;
  c.n_layers = 2;
  c.d_model = 24;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 6;
  c.ffn = 20;
  c.vocab = 41;
  c.n_rot = 6;
  c.rope_base = 100.0;  // large angles: a wrong position shows
  const auto model = rcpu_test::random_llama(c, 11, false);
  std::mt19937 gen(5);  // the lengths and ids only; portability of the draws does not matter here
  const auto below = [&](Index n) { return static_cast<Index>(gen() % static_cast<std::uint32_t>(n)); };
  const auto tokens = [&](Index n) {
    std::vector<std::int32_t> v;
    for (Index i = 0; i < n; ++i) v.push_back(static_cast<std::int32_t>(below(c.vocab)));
    return v;
  };
  std::vector<std::vector<TokenizedRequest>> docs;
  for (int d = 0; d < 9; ++d) {
    std::vector<TokenizedRequest> reqs;
    const auto ctx = tokens(1 + below(13));
    for (int k = 0; k < 2 + d % 3; ++k) {
      if (d % 3 == 2) {  // different contexts sharing a part (WinoGrande-like), one continuation
        auto cx = ctx;
        const auto extra = tokens(1 + k);
        cx.insert(cx.end(), extra.begin(), extra.end());
        reqs.push_back({cx, {3, 4}});
      } else {
        reqs.push_back({ctx, tokens(1 + below(5))});
      }
    }
    docs.push_back(reqs);
  }
  for (const Index batch_tokens : {Index(1), Index(24), Index(4096)}) {
    const auto packed = rcpu::model::score_with_model(model, docs, batch_tokens);
    REQUIRE(packed.size() == docs.size());
    for (std::size_t d = 0; d < docs.size(); ++d) {
      REQUIRE(packed[d].size() == docs[d].size());
      for (std::size_t r = 0; r < docs[d].size(); ++r) {
        const ChoiceScore want = zs_score_alone(model, docs[d][r]);
        INFO("batch_tokens " << batch_tokens << " doc " << d << " request " << r);
        CHECK(packed[d][r].loglikelihood == Approx(want.loglikelihood).epsilon(1e-5).margin(1e-4));
        CHECK(packed[d][r].is_greedy == want.is_greedy);
        CHECK(packed[d][r].tokens == want.tokens);
      }
    }
  }
}

TEST_CASE("zeroshot: acc and acc_norm from known log-likelihoods") {
  SECTION("acc_norm divides by the choice's characters (not bytes); ties go to the first") {
    ZeroShotDoc d;
    d.choices = {"a", "bbbb"};
    d.gold = 1;
    auto r = rcpu::model::rank_choices(d, {{-2.0, false, 1}, {-4.0, false, 2}});
    CHECK(r.pred == 0);
    CHECK(r.pred_norm == 1);  // -2/1 < -4/4
    CHECK_FALSE(r.correct());
    CHECK(r.correct_norm());
    d.choices = {"\xC3\xA9", "ab"};  // 1 character (2 bytes), 2 characters
    r = rcpu::model::rank_choices(d, {{-1.0, false, 1}, {-1.5, false, 1}});
    CHECK(r.pred_norm == 1);  // -1/1 < -1.5/2; by bytes it would be choice 0 (-0.5)
    r = rcpu::model::rank_choices(d, {{-1.0, false, 1}, {-1.0, false, 1}});
    CHECK(r.pred == 0);
    CHECK_THROWS_AS(rcpu::model::rank_choices(d, {{-1.0, false, 1}}), rcpu::invalid_argument);
  }
  SECTION("a mock scorer gives exact accuracies") {
    rcpu::model::ZeroShotTask task;
    task.name = "piqa";
    const auto doc = [](Index id, Index gold) {
      ZeroShotDoc d;
      d.doc_id = id;
      d.choices = {"x", "yyy"};
      d.requests = {{"c" + std::to_string(id), " x"}, {"c" + std::to_string(id), " yyy"}};
      d.gold = gold;
      return d;
    };
    task.docs = {doc(0, 0), doc(1, 1), doc(2, 1), doc(3, 0)};
    // Choice 1 has log-likelihood -2 (-2/3 per character), choice 0 -1 (-1 per character):
    // acc picks 0 everywhere, acc_norm picks 1 everywhere.
    const auto tokenize = [](const rcpu::model::ZeroShotRequest& r) {
      return TokenizedRequest{{1}, std::vector<std::int32_t>(r.continuation.size() - 1, 2)};
    };
    const rcpu::model::ZeroShotScorer scorer = [](const std::vector<std::vector<TokenizedRequest>>& docs) {
      std::vector<std::vector<ChoiceScore>> out;
      for (const auto& reqs : docs) {
        std::vector<ChoiceScore> s;
        for (const auto& r : reqs) s.push_back({r.continuation.size() == 1 ? -1.0 : -2.0, false, Index(r.continuation.size())});
        out.push_back(s);
      }
      return out;
    };
    const auto res = rcpu::model::evaluate_zeroshot(task, tokenize, scorer);
    CHECK(res.acc == 0.5);
    CHECK(res.acc_norm == 0.5);
    CHECK(res.paper_value() == 0.5);  // piqa reports acc
    CHECK(res.paper_correct() == std::vector<double>{1, 0, 0, 1});
    CHECK(res.docs[1].pred_norm == 1);
    CHECK(res.tokens_processed == 4 * 3);  // per document: the shared context, then yyy's first two tokens
    task.name = "hellaswag";           // reports acc_norm
    CHECK(rcpu::model::evaluate_zeroshot(task, tokenize, scorer).paper_correct() == std::vector<double>{0, 1, 1, 0});
  }
}

TEST_CASE("zeroshot: task files, the evenly spaced subset and document ids") {
  const rcpu_test::TempDir dir("zeroshot");
  const std::string path = dir / "piqa.jsonl";
  {
    std::ofstream f(path);
    for (int i = 0; i < 10; ++i)
      f << R"({"goal":"g)" << i << R"(","sol1":"a","sol2":"b","label":)" << i % 2 << R"(,"doc_id":)" << 100 + i << "}\n";
  }
  const auto all = rcpu::model::load_zeroshot_task("piqa", path);
  CHECK(all.docs.size() == 10);
  const auto sub = rcpu::model::load_zeroshot_task("piqa", path, 4);
  REQUIRE(sub.docs.size() == 4);
  std::vector<Index> ids;
  for (const auto& d : sub.docs) ids.push_back(d.doc_id);
  CHECK(ids == std::vector<Index>{100, 102, 105, 107});  // rows i * 10 / 4
  CHECK(sub.docs[1].requests[0].context == "Question: g2\nAnswer:");
  CHECK(rcpu::model::load_zeroshot_task("piqa", path, 50).docs.size() == 10);
  CHECK_THROWS_AS(rcpu::model::load_zeroshot_task("boolq", path), rcpu::invalid_argument);  // fields of another task
  CHECK_THROWS_AS(rcpu::model::load_zeroshot_task("piqa", dir / "absent.jsonl"), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::model::load_zeroshot_task("piqa", path, -1), rcpu::invalid_argument);
}

TEST_CASE("zeroshot: stories260K, packed scoring of real prompts equals each request alone") {
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  const std::string path = data + "/stories260K.gguf";
  if (!std::ifstream(path)) {
    WARN("SKIPPED: " << path << " not found (see docs/models.md; set RCPU_DATA_DIR)");
    return;
  }
  const auto file = rcpu::io::GgufFile::open(path);
  const auto tok = rcpu::model::Tokenizer::from_gguf(file);
  const auto model = rcpu::model::LlamaModel::from_gguf(file);
  rcpu::model::ZeroShotTask task;
  task.name = "piqa";
  task.docs = {make_zeroshot_doc("piqa", parse_json(R"({"goal":"Once upon a time, there was a little","sol1":"girl named Lily.","sol2":"purple seventeen of the walk.","label":0})"), 0),
               make_zeroshot_doc("winogrande", parse_json(R"({"sentence":"Tom gave Sue the ball because _ was kind.","option1":"Tom","option2":"Sue","answer":"1"})"), 1),
               make_zeroshot_doc("hellaswag", parse_json(R"({"activity_label":"Play","ctx_a":"The dog ran to the park.","ctx_b":"he","endings":["was happy.","ate the sky.","said moon moon.","jumped."],"label":"0"})"), 2)};
  const auto res = rcpu::model::evaluate_zeroshot(model, tok, task);
  for (std::size_t d = 0; d < task.docs.size(); ++d)
    for (std::size_t r = 0; r < task.docs[d].requests.size(); ++r) {
      const ChoiceScore want = zs_score_alone(model, rcpu::model::tokenize_request(tok, task.docs[d].requests[r]));
      INFO("doc " << d << " request " << r);
      CHECK(res.docs[d].choices[r].loglikelihood == Approx(want.loglikelihood).epsilon(1e-5).margin(1e-4));
      CHECK(res.docs[d].choices[r].is_greedy == want.is_greedy);
    }
  // The tiny story model prefers the story-like ending by a wide margin.
  CHECK(res.docs[0].choices[0].loglikelihood > res.docs[0].choices[1].loglikelihood + 5.0);
  CHECK(res.tokens_per_second > 0);
}
