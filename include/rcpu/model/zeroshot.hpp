// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_ZEROSHOT_HPP
#define RCPU_MODEL_ZEROSHOT_HPP

/// \file zeroshot.hpp
/// Zero-shot multiple-choice accuracy as EleutherAI lm-evaluation-harness 0.4 computes it (the RCPU
/// paper's Table 2: BoolQ, PIQA, HellaSwag, WinoGrande, ARC-Easy, ARC-Challenge, OpenBookQA).
///
/// Each document becomes one (context, continuation) request per choice with the harness's prompt
/// formats (make_zeroshot_doc()); each request is tokenized as the harness's `_encode_pair` does
/// (trailing white space of the context moves to the continuation; the continuation's tokens are those
/// of tokenize(context + continuation) after the first len(tokenize(context)) of them); its score is the
/// summed log-probability of the continuation's tokens given the context; the prediction is the argmax
/// over choices (`acc`), or over log-probability / the choice's length in characters (`acc_norm`).
///
/// The requests of one document are packed into one sequence: their common token prefix (the context,
/// for every task but WinoGrande) is computed once and each continuation attends to it and to itself
/// (PackedLayout in llama.hpp), so a document costs one context plus its continuations; documents of
/// similar length are batched into one forward pass, and the output head runs only on the rows whose
/// next token is scored. The data are the tasks' validation splits as JSON Lines with the datasets' own
/// fields (tools/zeroshot/convert.py; docs/zeroshot.md says how to get them).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../detail/utf8.hpp"
#include "../error.hpp"
#include "../io/json.hpp"
#include "llama.hpp"
#include "perplexity.hpp"
#include "tokenizer.hpp"

namespace rcpu {
namespace model {

/// Which accuracy a task reports (the harness's `acc` and `acc_norm`).
enum class ZeroShotMetric { acc, acc_norm };

inline const char* to_string(ZeroShotMetric m) { return m == ZeroShotMetric::acc ? "acc" : "acc_norm"; }

/// One task of the paper's seven: its name (the harness's), the metric the paper reports for it, and
/// whether the harness also defines acc_norm for it.
struct ZeroShotTaskInfo {
  const char* name;
  ZeroShotMetric paper_metric;
  bool has_acc_norm;
};

/// The paper's seven tasks in its table order: acc for BoolQ, PIQA and WinoGrande, acc_norm for the others.
inline const std::vector<ZeroShotTaskInfo>& zeroshot_tasks() {
  static const std::vector<ZeroShotTaskInfo> t = {{"boolq", ZeroShotMetric::acc, false},
                                                  {"piqa", ZeroShotMetric::acc, true},
                                                  {"hellaswag", ZeroShotMetric::acc_norm, true},
                                                  {"winogrande", ZeroShotMetric::acc, false},
                                                  {"arc_easy", ZeroShotMetric::acc_norm, true},
                                                  {"arc_challenge", ZeroShotMetric::acc_norm, true},
                                                  {"openbookqa", ZeroShotMetric::acc_norm, true}};
  return t;
}

/// The task named `name`. \throws rcpu::invalid_argument for an unknown name.
inline const ZeroShotTaskInfo& zeroshot_task(const std::string& name) {
  std::string all;
  for (const ZeroShotTaskInfo& t : zeroshot_tasks()) {
    if (name == t.name) return t;
    all += std::string(all.empty() ? "" : ", ") + t.name;
  }
  rcpu::detail::fail("unknown zero-shot task '" + name + "' (" + all + ")");
}

/// One loglikelihood request: the text the model is conditioned on and the text it is scored on.
struct ZeroShotRequest {
  std::string context;
  std::string continuation;
};

/// One document, ready to score: a request per choice, the choices (their lengths in characters
/// normalise acc_norm) and the index of the right one.
struct ZeroShotDoc {
  Index doc_id = 0;  ///< row of the document in its task's file
  std::vector<ZeroShotRequest> requests;
  std::vector<std::string> choices;
  Index gold = 0;
};

/// A task's documents.
struct ZeroShotTask {
  std::string name;
  std::vector<ZeroShotDoc> docs;
};

namespace detail {

// Python's str.isspace() code points (what str.strip() and str.rstrip() remove): the regex \s of the
// tokenizers plus the ASCII separators 0x1C-0x1F.
inline bool python_space(std::uint32_t cp) { return is_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

// Byte length of `s` without its trailing (Python) white space.
inline std::size_t rstrip_length(std::string_view s) {
  const auto chars = rcpu::detail::utf8_chars(s);
  std::size_t end = s.size();
  for (auto it = chars.rbegin(); it != chars.rend() && python_space(it->cp); ++it) end = it->begin;
  return end;
}

// Python's str.strip().
inline std::string python_strip(std::string_view s) {
  const auto chars = rcpu::detail::utf8_chars(s);
  std::size_t first = 0;
  while (first < chars.size() && python_space(chars[first].cp)) ++first;
  if (first == chars.size()) return std::string();
  const std::size_t end = rstrip_length(s);
  return std::string(s.substr(chars[first].begin, end - chars[first].begin));
}

// Python's str.replace(old, new): left to right, non-overlapping.
inline std::string python_replace(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);  // not needed here; Python would insert `to` between characters
  std::string out;
  std::size_t i = 0;
  for (std::size_t at; (at = s.find(from, i)) != std::string_view::npos; i = at + from.size()) {
    out.append(s.substr(i, at - i));
    out.append(to);
  }
  out.append(s.substr(i));
  return out;
}

// Python's str.capitalize() for ASCII letters (first character upper case, the rest lower case); other
// characters are kept as they are, where Python would change a non-ASCII letter's case too. HellaSwag's
// ctx_b is ASCII in the documents checked against the harness (docs/zeroshot.md).
inline std::string python_capitalize(std::string_view s) {
  std::string out(s);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (i == 0 && c >= 'a' && c <= 'z') out[i] = static_cast<char>(c - 'a' + 'A');
    if (i > 0 && c >= 'A' && c <= 'Z') out[i] = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// re.sub("\\[.*?\\]", "", s): removes each '[' ... first following ']' with no newline between ('.'
// does not match a newline); a '[' with no such ']' stays.
inline std::string remove_brackets(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      std::size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// lm-eval's hellaswag preprocess().
inline std::string hellaswag_preprocess(std::string_view text) {
  std::string t = python_strip(text);
  t = python_replace(t, " [title]", ". ");
  t = remove_brackets(t);
  return python_replace(t, "  ", " ");
}

// Number of characters (code points) of a UTF-8 string, as Python's len().
inline Index char_count(std::string_view s) { return static_cast<Index>(rcpu::detail::utf8_chars(s).size()); }

inline const io::Json& field(const io::Json& row, const char* key, const std::string& where) {
  const io::Json* j = row.find(key);
  rcpu::detail::require(j != nullptr, where + ": no field \"" + key + "\"");
  return *j;
}

// A whole non-negative number written as text (HellaSwag's label "3"), nothing else.
inline Index parse_label(const std::string& s, const std::string& where) {
  rcpu::detail::require(!s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos,
                        where + ": label '" + s + "' is not a whole number");
  return static_cast<Index>(std::stol(s));
}

inline Index index_of(const io::Json& labels, const std::string& key, const std::string& where) {
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels.at(i).as_string() == key) return static_cast<Index>(i);
  rcpu::detail::fail(where + ": answer key '" + key + "' is not among the choice labels");
}

}  // namespace detail

/// Builds the requests of one document of task `task` from its row (the dataset's own fields, as
/// tools/zeroshot/convert.py writes them), with lm-evaluation-harness 0.4's prompt formats:
/// - boolq: "{passage}\nQuestion: {question}?\nAnswer:" + " no" / " yes" (gold: `answer`, or `label`);
/// - piqa: "Question: {goal}\nAnswer:" + " {sol1}" / " {sol2}";
/// - hellaswag: preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}") + " " + preprocess(ending);
/// - winogrande: the sentence up to "_" with each option as the context, " " + the rest after "_"
///   (stripped) as the continuation (partial scoring);
/// - arc_easy, arc_challenge: "Question: {question}\nAnswer:" + " {choice}";
/// - openbookqa: "{question_stem}" + " {choice}".
/// \throws rcpu::invalid_argument naming the task, document and field when a field is missing or odd.
inline ZeroShotDoc make_zeroshot_doc(const std::string& task, const io::Json& row, Index doc_id) {
  const std::string where = task + " document " + std::to_string(doc_id);
  ZeroShotDoc d;
  d.doc_id = doc_id;
  const auto f = [&](const char* key) -> const io::Json& { return detail::field(row, key, where); };
  const auto str = [&](const char* key) -> const std::string& { return f(key).as_string(); };
  std::string context;
  try {
    if (task == "boolq") {
      context = str("passage") + "\nQuestion: " + str("question") + "?\nAnswer:";
      d.choices = {"no", "yes"};
      const io::Json* answer = row.find("answer");
      d.gold = answer != nullptr ? (answer->as_bool() ? 1 : 0) : static_cast<Index>(f("label").as_int());
    } else if (task == "piqa") {
      context = "Question: " + str("goal") + "\nAnswer:";
      d.choices = {str("sol1"), str("sol2")};
      d.gold = static_cast<Index>(f("label").as_int());
    } else if (task == "hellaswag") {
      context = detail::hellaswag_preprocess(str("activity_label") + ": " + str("ctx_a") + " " +
                                             detail::python_capitalize(str("ctx_b")));
      for (const io::Json& e : f("endings").as_array()) d.choices.push_back(detail::hellaswag_preprocess(e.as_string()));
      const io::Json& label = f("label");
      d.gold = label.is_string() ? detail::parse_label(label.as_string(), where) : static_cast<Index>(label.as_int());
    } else if (task == "winogrande") {
      const std::string& s = str("sentence");
      const std::size_t blank = s.find('_');
      rcpu::detail::require(blank != std::string::npos, where + ": the sentence has no '_'");
      d.choices = {s.substr(0, blank) + str("option1"), s.substr(0, blank) + str("option2")};
      const std::string continuation = " " + detail::python_strip(std::string_view(s).substr(blank + 1));
      for (const std::string& c : d.choices) d.requests.push_back({c, continuation});
      const std::string& answer = str("answer");
      rcpu::detail::require(answer == "1" || answer == "2", where + ": answer '" + answer + "' is not 1 or 2");
      d.gold = answer == "1" ? 0 : 1;
    } else if (task == "arc_easy" || task == "arc_challenge" || task == "openbookqa") {
      const bool obqa = task == "openbookqa";
      context = obqa ? str("question_stem") : "Question: " + str("question") + "\nAnswer:";
      const io::Json& choices = f("choices");
      for (const io::Json& t : choices.at("text").as_array()) d.choices.push_back(t.as_string());
      std::string key = str("answerKey");
      if (obqa) key = key.substr(std::min(key.size(), key.find_first_not_of(" \t\n\r\f\v")));
      d.gold = detail::index_of(choices.at("label"), key, where);
    } else {
      (void)zeroshot_task(task);  // throws, listing the tasks
    }
  } catch (const invalid_argument& e) {
    if (e.message().rfind(task, 0) == 0) throw;
    throw invalid_argument(where + ": " + e.message());
  }
  if (d.requests.empty())
    for (const std::string& c : d.choices) d.requests.push_back({context, " " + c});
  rcpu::detail::require(d.choices.size() >= 2, where + ": fewer than two choices");
  rcpu::detail::require(d.gold >= 0 && d.gold < static_cast<Index>(d.choices.size()),
                        where + ": gold " + std::to_string(d.gold) + " is outside [0, " +
                            std::to_string(d.choices.size()) + ")");
  return d;
}

/// Reads task `task` from its JSON Lines file (one document per line, `doc_id` = the row index when
/// the line has no `doc_id` field). With `per_task` > 0 and more documents than that, keeps the
/// evenly spaced subset evenly_spaced_windows(total, per_task) (the same rule as for perplexity
/// windows), so that the subset is fixed and samples the whole split.
/// \throws rcpu::invalid_argument for an unreadable file, a malformed line, or an unknown task.
inline ZeroShotTask load_zeroshot_task(const std::string& task, const std::string& jsonl_path, Index per_task = 0) {
  (void)zeroshot_task(task);
  rcpu::detail::require(per_task >= 0, "load_zeroshot_task: per_task = " + std::to_string(per_task) + " must be >= 0");
  std::vector<io::Json> rows;
  io::for_each_json_line(jsonl_path, [&](const io::Json& j, std::size_t) { rows.push_back(j); });
  rcpu::detail::require(!rows.empty(), "load_zeroshot_task: '" + jsonl_path + "' holds no document");
  const Index total = static_cast<Index>(rows.size());
  const std::vector<Index> chosen = evenly_spaced_windows(total, per_task > 0 ? per_task : total);
  ZeroShotTask t;
  t.name = task;
  for (const Index i : chosen) {
    const io::Json& row = rows[static_cast<std::size_t>(i)];
    const io::Json* id = row.find("doc_id");
    t.docs.push_back(make_zeroshot_doc(task, row, id != nullptr ? static_cast<Index>(id->as_int()) : i));
  }
  return t;
}

/// A request's token ids: the context's and the continuation's.
struct TokenizedRequest {
  std::vector<std::int32_t> context;
  std::vector<std::int32_t> continuation;
};

/// Tokenizes a request as lm-evaluation-harness 0.4.13 does for causal models (`loglikelihood` and
/// `_encode_pair`). An empty context becomes the prefix token (BOS, or EOS when the vocabulary has no
/// BOS) in front of tokenize(continuation) without special tokens, unless that already starts with the
/// prefix token, which then serves as the context. Otherwise trailing white space of the context moves
/// to the front of the continuation; the context's ids are tokenize(context) and the continuation's are
/// tokenize(context + continuation) without its first len(tokenize(context)) ids, so that a token the
/// merges form across the boundary is split the harness's way: its context part is scored as context,
/// and the merged token itself is dropped (tests/model/test_zeroshot.cpp shows a case). The tokenizer's
/// own BOS rule applies (GGUF `tokenizer.ggml.add_bos_token`).
/// \throws rcpu::invalid_argument when the context or the continuation gets no token.
inline TokenizedRequest tokenize_request(const Tokenizer& tok, const ZeroShotRequest& r) {
  TokenizedRequest t;
  if (r.context.empty()) {
    const std::int32_t prefix = tok.bos_id() >= 0 ? tok.bos_id() : tok.eos_id();
    rcpu::detail::require(prefix >= 0, "tokenize_request: empty context and the vocabulary has no BOS or EOS token");
    t.continuation = tok.encode(r.continuation, false);
    if (!t.continuation.empty() && t.continuation.front() == prefix) {
      t.context = {prefix};
      t.continuation.erase(t.continuation.begin());
    } else {
      t.context = {prefix};
    }
  } else {
    std::string context = r.context, continuation = r.continuation;
    const std::size_t keep = detail::rstrip_length(context);
    if (keep < context.size()) {
      continuation = context.substr(keep) + continuation;
      context.resize(keep);
    }
    t.context = tok.encode(context);
    const std::vector<std::int32_t> whole = tok.encode(context + continuation);
    const std::size_t n = std::min(t.context.size(), whole.size());
    t.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(n), whole.end());
  }
  rcpu::detail::require(!t.context.empty(), "tokenize_request: the context '" + r.context + "' has no token");
  rcpu::detail::require(!t.continuation.empty(), "tokenize_request: the continuation '" + r.continuation +
                                                     "' has no token of its own");
  return t;
}

/// Cuts a request to a model's context length as the harness does: the model reads at most
/// `max_length` tokens, the last ones of context + continuation (the input drops the last token), so
/// when the two hold more than max_length + 1 tokens the context loses its first ones.
/// \throws rcpu::invalid_argument when the continuation alone does not fit.
inline void truncate_request(TokenizedRequest& t, Index max_length) {
  rcpu::detail::require(max_length >= 1, "truncate_request: max_length = " + std::to_string(max_length) + " must be >= 1");
  const Index c = static_cast<Index>(t.context.size()), n = static_cast<Index>(t.continuation.size());
  const Index drop = c + n - (max_length + 1);
  if (drop <= 0) return;
  rcpu::detail::require(drop < c, "truncate_request: a continuation of " + std::to_string(n) +
                                      " tokens does not fit a context of " + std::to_string(max_length));
  t.context.erase(t.context.begin(), t.context.begin() + static_cast<std::ptrdiff_t>(drop));
}

/// The score of one choice.
struct ChoiceScore {
  double loglikelihood = 0.0;  ///< sum of the continuation tokens' log-probabilities (nats)
  bool is_greedy = false;      ///< every continuation token is the argmax of its logits
  Index tokens = 0;            ///< continuation tokens
};

/// Scores the requests of several documents: for each document, one ChoiceScore per request.
using ZeroShotScorer =
    std::function<std::vector<std::vector<ChoiceScore>>(const std::vector<std::vector<TokenizedRequest>>& docs)>;

/// One packed document: its rows' token ids, positions and branches, and for each request the rows
/// whose logits predict its continuation tokens (PackedLayout).
struct PackedDoc {
  std::vector<std::int32_t> ids, position, branch;
  std::vector<std::vector<Index>> score_rows;     ///< per request: the row that predicts each target
  std::vector<std::vector<std::int32_t>> target;  ///< per request: the continuation's ids
};

/// Packs the requests of one document into one sequence: the longest token prefix common to all
/// requests' inputs (context + continuation without its last token) is stored once (branch 0), then
/// each request's remaining input tokens as branch r + 1. Request r's continuation token t is
/// predicted by the row holding the token before it in that request's sequence.
inline PackedDoc pack_requests(const std::vector<TokenizedRequest>& requests) {
  rcpu::detail::require(!requests.empty(), "pack_requests: no request");
  std::vector<std::vector<std::int32_t>> seq;
  for (const TokenizedRequest& r : requests) {
    rcpu::detail::require(!r.context.empty() && !r.continuation.empty(), "pack_requests: a request has an empty context or continuation");
    std::vector<std::int32_t> s = r.context;
    s.insert(s.end(), r.continuation.begin(), r.continuation.end());
    seq.push_back(std::move(s));
  }
  // Inputs are the sequences without their last token; the shared prefix is common to all inputs.
  std::size_t prefix = seq[0].size() - 1;
  for (const auto& s : seq) {
    std::size_t n = 0;
    while (n < prefix && n + 1 < s.size() && s[n] == seq[0][n]) ++n;
    prefix = std::min(prefix, n);
  }
  PackedDoc p;
  for (std::size_t i = 0; i < prefix; ++i) {
    p.ids.push_back(seq[0][i]);
    p.position.push_back(static_cast<std::int32_t>(i));
    p.branch.push_back(0);
  }
  for (std::size_t r = 0; r < seq.size(); ++r) {
    const std::vector<std::int32_t>& s = seq[r];
    const Index start = static_cast<Index>(p.ids.size());
    for (std::size_t i = prefix; i + 1 < s.size(); ++i) {
      p.ids.push_back(s[i]);
      p.position.push_back(static_cast<std::int32_t>(i));
      p.branch.push_back(static_cast<std::int32_t>(r + 1));
    }
    // Sequence position i (>= 1) is predicted by the row of position i - 1.
    const auto row_of = [&](std::size_t pos) { return pos < prefix ? Index(pos) : start + Index(pos - prefix); };
    std::vector<Index> rows;
    std::vector<std::int32_t> target;
    for (std::size_t i = requests[r].context.size(); i < s.size(); ++i) {
      rows.push_back(row_of(i - 1));
      target.push_back(s[i]);
    }
    p.score_rows.push_back(std::move(rows));
    p.target.push_back(std::move(target));
  }
  return p;
}

/// Options of evaluate_zeroshot().
struct ZeroShotOptions {
  Index batch_tokens = 2048;         ///< rows (documents x padded length) per forward pass, at least one document
  std::ostream* progress = nullptr;  ///< where to draw a progress bar (none when null)
};

/// The scorer of a LlamaModel: packs each document (pack_requests()), batches documents of similar
/// length (padded to the longest in the batch; padding rows are never attended to), runs the model,
/// and evaluates the output head only on the scored rows. Log-softmax: the max-shifted exponentials in
/// float, their sum and the logarithm in double.
inline std::vector<std::vector<ChoiceScore>> score_with_model(const LlamaModel& model,
                                                              const std::vector<std::vector<TokenizedRequest>>& docs,
                                                              Index batch_tokens = 2048) {
  rcpu::detail::require(batch_tokens >= 1, "score_with_model: batch_tokens = " + std::to_string(batch_tokens) + " must be >= 1");
  std::vector<PackedDoc> packed;
  packed.reserve(docs.size());
  for (const auto& d : docs) packed.push_back(pack_requests(d));
  std::vector<std::size_t> order(docs.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return packed[a].ids.size() > packed[b].ids.size(); });
  std::vector<std::vector<ChoiceScore>> out(docs.size());
  const Eigen::MatrixXf& head = model.output_weight();
  std::size_t b0 = 0;
  while (b0 < order.size()) {
    // Longest first: the first document of a batch sets its padded length.
    const Index T = std::max<Index>(1, static_cast<Index>(packed[order[b0]].ids.size()));
    std::size_t b1 = b0 + 1;
    while (b1 < order.size() && static_cast<Index>(b1 - b0 + 1) * T <= batch_tokens) ++b1;
    const Index n = static_cast<Index>(b1 - b0);
    PackedLayout layout;
    std::vector<std::int32_t> ids;
    ids.reserve(static_cast<std::size_t>(n * T));
    for (std::size_t k = b0; k < b1; ++k) {
      const PackedDoc& p = packed[order[k]];
      ids.insert(ids.end(), p.ids.begin(), p.ids.end());
      layout.position.insert(layout.position.end(), p.position.begin(), p.position.end());
      layout.branch.insert(layout.branch.end(), p.branch.begin(), p.branch.end());
      const std::size_t pad = static_cast<std::size_t>(T) - p.ids.size();
      ids.insert(ids.end(), pad, p.ids.empty() ? 0 : p.ids.back());
      layout.position.insert(layout.position.end(), pad, 0);
      layout.branch.insert(layout.branch.end(), pad, -1);
    }
    const Eigen::MatrixXf hidden = model.forward_hidden(ids, T, nullptr, &layout);
    // Only the scored rows go through the final norm and the output head.
    std::vector<Index> rows;
    for (std::size_t k = b0; k < b1; ++k)
      for (const auto& rr : packed[order[k]].score_rows)
        for (const Index r : rr) rows.push_back(static_cast<Index>(k - b0) * T + r);
    Eigen::MatrixXf picked(static_cast<Index>(rows.size()), hidden.cols());
    for (std::size_t i = 0; i < rows.size(); ++i) picked.row(static_cast<Index>(i)) = hidden.row(rows[i]);
    const Eigen::MatrixXf logits = head * model.final_norm(picked).transpose();  // vocab x scored rows
    Index col = 0;
    for (std::size_t k = b0; k < b1; ++k) {
      const PackedDoc& p = packed[order[k]];
      std::vector<ChoiceScore>& scores = out[order[k]];
      for (std::size_t r = 0; r < p.target.size(); ++r) {
        ChoiceScore s;
        s.is_greedy = true;
        for (const std::int32_t t : p.target[r]) {
          const auto z = logits.col(col++);
          Index arg = 0;
          const float mx = z.maxCoeff(&arg);
          const double lse = static_cast<double>(mx) + std::log((z.array() - mx).exp().template cast<double>().sum());
          s.loglikelihood += static_cast<double>(z(t)) - lse;
          s.is_greedy = s.is_greedy && arg == t;
          ++s.tokens;
        }
        scores.push_back(s);
      }
    }
    b0 = b1;
  }
  return out;
}

/// The outcome of one document.
struct ZeroShotDocResult {
  Index doc_id = 0;
  Index gold = 0;
  std::vector<ChoiceScore> choices;
  Index pred = 0;       ///< argmax of the log-likelihoods (first of equal ones, as numpy's argmax)
  Index pred_norm = 0;  ///< argmax of log-likelihood / characters of the choice
  bool correct() const { return pred == gold; }
  bool correct_norm() const { return pred_norm == gold; }
};

/// Whether a document counts as right under `metric`.
inline bool counts_right(const ZeroShotDocResult& d, ZeroShotMetric metric) {
  return metric == ZeroShotMetric::acc ? d.correct() : d.correct_norm();
}

/// The accuracy of a model on one task.
struct ZeroShotResult {
  std::string task;
  ZeroShotMetric paper_metric = ZeroShotMetric::acc;
  std::vector<ZeroShotDocResult> docs;
  double acc = 0.0, acc_norm = 0.0;  ///< fractions in [0, 1]
  Index tokens_processed = 0;        ///< rows through the model (packed; no padding)
  double seconds = 0.0;
  double tokens_per_second = 0.0;
  /// The paper's metric of this task.
  double paper_value() const { return paper_metric == ZeroShotMetric::acc ? acc : acc_norm; }
  /// Per document: 1 when the paper's metric counts it right, else 0 (for paired bootstraps).
  std::vector<double> paper_correct() const {
    std::vector<double> v;
    for (const ZeroShotDocResult& d : docs) v.push_back(counts_right(d, paper_metric) ? 1.0 : 0.0);
    return v;
  }
};

/// The predictions of one document from its choices' scores (lm-eval's multiple_choice rule).
inline ZeroShotDocResult rank_choices(const ZeroShotDoc& doc, std::vector<ChoiceScore> scores) {
  rcpu::detail::require(scores.size() == doc.choices.size(), "rank_choices: " + std::to_string(scores.size()) +
                                                                 " scores for " + std::to_string(doc.choices.size()) +
                                                                 " choices");
  ZeroShotDocResult r;
  r.doc_id = doc.doc_id;
  r.gold = doc.gold;
  double best = 0, best_norm = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const double ll = scores[i].loglikelihood;
    const double norm = ll / static_cast<double>(detail::char_count(doc.choices[i]));
    if (i == 0 || ll > best) { best = ll; r.pred = static_cast<Index>(i); }
    if (i == 0 || norm > best_norm) { best_norm = norm; r.pred_norm = static_cast<Index>(i); }
  }
  r.choices = std::move(scores);
  return r;
}

namespace detail {

inline void draw_zeroshot_progress(std::ostream& os, const std::string& task, Index done, Index total, Index tokens,
                                   double seconds, Index right) {
  const int width = 30;
  const int fill = total > 0 ? static_cast<int>(width * done / total) : width;
  std::ostringstream line;
  line << "\r" << task << " [" << std::string(static_cast<std::size_t>(fill), '#')
       << std::string(static_cast<std::size_t>(width - fill), '.') << "] " << done << "/" << total << " docs  "
       << std::fixed << std::setprecision(0) << (seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0)
       << " tok/s";
  if (done > 0) line << "  acc " << std::setprecision(3) << static_cast<double>(right) / static_cast<double>(done);
  os << line.str() << std::flush;
}

}  // namespace detail

/// Evaluates `task` with any tokenizer and scorer (the core of the other overload; a test can give a
/// scorer whose log-likelihoods are known). Documents go to the scorer in groups, for progress.
inline ZeroShotResult evaluate_zeroshot(const ZeroShotTask& task,
                                        const std::function<TokenizedRequest(const ZeroShotRequest&)>& tokenize,
                                        const ZeroShotScorer& scorer, const ZeroShotOptions& options = ZeroShotOptions()) {
  const ZeroShotTaskInfo& info = zeroshot_task(task.name);
  rcpu::detail::require(!task.docs.empty(), "evaluate_zeroshot: task " + task.name + " has no document");
  ZeroShotResult res;
  res.task = task.name;
  res.paper_metric = info.paper_metric;
  const auto t0 = std::chrono::steady_clock::now();
  const Index n = static_cast<Index>(task.docs.size());
  const Index group = 64;  // documents per scorer call: large enough to batch, small enough to report progress
  Index right = 0;
  if (options.progress) detail::draw_zeroshot_progress(*options.progress, task.name, 0, n, 0, 0.0, 0);
  for (Index g0 = 0; g0 < n; g0 += group) {
    const Index g1 = std::min(n, g0 + group);
    std::vector<std::vector<TokenizedRequest>> batch;
    for (Index i = g0; i < g1; ++i) {
      std::vector<TokenizedRequest> reqs;
      for (const ZeroShotRequest& r : task.docs[static_cast<std::size_t>(i)].requests) reqs.push_back(tokenize(r));
      res.tokens_processed += static_cast<Index>(pack_requests(reqs).ids.size());
      batch.push_back(std::move(reqs));
    }
    std::vector<std::vector<ChoiceScore>> scores = scorer(batch);
    rcpu::detail::require(scores.size() == batch.size(), "evaluate_zeroshot: the scorer returned " +
                                                             std::to_string(scores.size()) + " results for " +
                                                             std::to_string(batch.size()) + " documents");
    for (Index i = g0; i < g1; ++i) {
      res.docs.push_back(rank_choices(task.docs[static_cast<std::size_t>(i)], std::move(scores[static_cast<std::size_t>(i - g0)])));
      const ZeroShotDocResult& d = res.docs.back();
      right += counts_right(d, info.paper_metric) ? 1 : 0;
    }
    if (options.progress)
      detail::draw_zeroshot_progress(*options.progress, task.name, g1, n, res.tokens_processed,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), right);
  }
  if (options.progress) *options.progress << "\n";
  Index acc = 0, acc_norm = 0;
  for (const ZeroShotDocResult& d : res.docs) {
    acc += d.correct() ? 1 : 0;
    acc_norm += d.correct_norm() ? 1 : 0;
  }
  res.acc = static_cast<double>(acc) / static_cast<double>(n);
  res.acc_norm = static_cast<double>(acc_norm) / static_cast<double>(n);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_second = res.seconds > 0 ? static_cast<double>(res.tokens_processed) / res.seconds : 0.0;
  return res;
}

/// Evaluates `task` on `model` with its tokenizer (see the file comment); requests longer than the
/// model's context length (LlamaConfig::context, when set) are cut as the harness cuts them.
/// \throws rcpu::invalid_argument for an unknown task, an empty task, or a continuation with no token.
inline ZeroShotResult evaluate_zeroshot(const LlamaModel& model, const Tokenizer& tokenizer, const ZeroShotTask& task,
                                        const ZeroShotOptions& options = ZeroShotOptions()) {
  const Index max_length = model.config().context;
  return evaluate_zeroshot(
      task,
      [&](const ZeroShotRequest& r) {
        TokenizedRequest t = tokenize_request(tokenizer, r);
        if (max_length > 0) truncate_request(t, max_length);
        return t;
      },
      [&](const std::vector<std::vector<TokenizedRequest>>& docs) {
        return score_with_model(model, docs, options.batch_tokens);
      },
      options);
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_ZEROSHOT_HPP
