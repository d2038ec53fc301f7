// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_PERPLEXITY_HPP
#define RCPU_MODEL_PERPLEXITY_HPP

/// \file perplexity.hpp
/// Perplexity in the RCPU paper's protocol (METHOD.md section 5): the token stream is cut into
/// non-overlapping windows of 128 tokens (a last partial window is dropped), each window is an
/// independent sequence, every token but the first of a window is predicted from the ones before it,
/// and PPL = exp(mean cross-entropy over all predicted tokens). Optionally on a fixed subset of windows.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "llama.hpp"

namespace rcpu {
namespace model {

struct PerplexityOptions {
  Index window = 128;          ///< tokens per window
  std::vector<Index> windows;  ///< indices of the windows to evaluate (empty: all)
  Index batch = 8;             ///< windows per forward pass (memory: batch * window * vocab floats of logits)
  std::ostream* progress = nullptr;  ///< where to draw a progress bar (none when null)
};

struct PerplexityResult {
  double perplexity = 0.0;
  double mean_nll = 0.0;           ///< mean cross-entropy (nats per predicted token)
  Index windows = 0;               ///< windows evaluated
  Index tokens_scored = 0;         ///< predicted tokens: windows * (window - 1)
  Index tokens_processed = 0;      ///< tokens through the model: windows * window
  double seconds = 0.0;            ///< forward pass + cross-entropy time
  double tokens_per_second = 0.0;  ///< tokens_processed / seconds
  std::vector<double> window_nll;  ///< mean cross-entropy of each evaluated window, in order
};

/// Number of whole windows in `n_tokens` tokens.
inline Index count_windows(Index n_tokens, Index window) {
  rcpu::detail::require(window > 1, "count_windows: window = " + std::to_string(window) + " must be > 1");
  return n_tokens / window;
}

/// `count` window indices spread evenly over [0, total) (all of them when count >= total): a fixed,
/// deterministic subset that samples the whole text.
inline std::vector<Index> evenly_spaced_windows(Index total, Index count) {
  rcpu::detail::require(total >= 0 && count >= 0, "evenly_spaced_windows: total and count must be >= 0");
  std::vector<Index> out;
  if (count >= total) {
    for (Index i = 0; i < total; ++i) out.push_back(i);
    return out;
  }
  for (Index i = 0; i < count; ++i) out.push_back(i * total / count);
  return out;
}

/// The text the paper's evaluation tokenizes from WikiText-2: the test split as Hugging Face `datasets`
/// yields it (one row per line of wiki.test.raw, universal newlines, keeping the "\n"; lines holding
/// only whitespace become empty rows), joined with "\n\n".
inline std::string wikitext_protocol_text(std::string_view raw) {
  std::string text;
  text.reserve(raw.size() + raw.size() / 8);
  std::string line;
  bool first = true;
  const auto flush = [&]() {
    const bool blank = line.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
    if (!first) text += "\n\n";
    if (!blank) text += line;
    first = false;
    line.clear();
  };
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      line += '\n';
      flush();
    } else {
      line += c;
    }
  }
  if (!line.empty()) flush();
  return text;
}

namespace detail {

inline void draw_progress(std::ostream& os, Index done, Index total, Index tokens, double seconds, double nll_sum,
                          Index scored) {
  const int width = 30;
  const int fill = total > 0 ? static_cast<int>(width * done / total) : width;
  std::ostringstream line;
  line << "\r[" << std::string(static_cast<std::size_t>(fill), '#') << std::string(static_cast<std::size_t>(width - fill), '.')
       << "] " << done << "/" << total << " windows  " << std::fixed << std::setprecision(0)
       << (seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0) << " tok/s";
  if (scored > 0) line << "  ppl " << std::setprecision(3) << std::exp(nll_sum / static_cast<double>(scored));
  os << line.str() << std::flush;
}

}  // namespace detail

/// Perplexity of `model` on `tokens` cut into windows (see the file comment).
/// \throws rcpu::invalid_argument for a window < 2, a batch < 1, a window index out of range, or no
///         whole window in `tokens`.
inline PerplexityResult perplexity(const LlamaModel& model, const std::vector<std::int32_t>& tokens,
                                   const PerplexityOptions& options = PerplexityOptions()) {
  const Index T = options.window;
  const Index total = count_windows(static_cast<Index>(tokens.size()), T);
  rcpu::detail::require(options.batch >= 1, "perplexity: batch = " + std::to_string(options.batch) + " must be >= 1");
  rcpu::detail::require(total > 0, "perplexity: " + std::to_string(tokens.size()) + " tokens hold no whole window of " +
                                 std::to_string(T));
  std::vector<Index> chosen = options.windows;
  if (chosen.empty())
    for (Index i = 0; i < total; ++i) chosen.push_back(i);
  for (const Index w : chosen)
    rcpu::detail::require(w >= 0 && w < total, "perplexity: window index " + std::to_string(w) + " is outside [0, " +
                                             std::to_string(total) + ")");

  PerplexityResult r;
  r.windows = static_cast<Index>(chosen.size());
  const auto t0 = std::chrono::steady_clock::now();
  double nll_sum = 0.0;
  Index scored = 0;
  const Eigen::MatrixXf& head = model.output_weight();
  const Index n = static_cast<Index>(chosen.size());
  if (options.progress) detail::draw_progress(*options.progress, 0, n, 0, 0.0, 0.0, 0);
  for (Index b0 = 0; b0 < n; b0 += options.batch) {
    const Index nb = std::min(options.batch, n - b0);
    std::vector<std::int32_t> ids;
    ids.reserve(static_cast<std::size_t>(nb * T));
    for (Index k = 0; k < nb; ++k) {
      const auto first = tokens.begin() + static_cast<std::ptrdiff_t>(chosen[static_cast<std::size_t>(b0 + k)] * T);
      ids.insert(ids.end(), first, first + static_cast<std::ptrdiff_t>(T));
    }
    const Eigen::MatrixXf hidden = model.final_norm(model.forward_hidden(ids, T));
    // vocab x tokens: each token's logits are one contiguous column.
    const Eigen::MatrixXf logits = head * hidden.transpose();
    for (Index k = 0; k < nb; ++k) {
      double window_sum = 0.0;
      for (Index t = 0; t + 1 < T; ++t) {
        const Index col = k * T + t;
        const auto z = logits.col(col);
        const float mx = z.maxCoeff();
        const double lse = static_cast<double>(mx) + std::log((z.array() - mx).exp().template cast<double>().sum());
        window_sum += lse - static_cast<double>(z(ids[static_cast<std::size_t>(col + 1)]));
      }
      r.window_nll.push_back(window_sum / static_cast<double>(T - 1));
      nll_sum += window_sum;
      scored += T - 1;
    }
    if (options.progress) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      detail::draw_progress(*options.progress, b0 + nb, n, (b0 + nb) * T, s, nll_sum, scored);
    }
  }
  if (options.progress) *options.progress << "\n";
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_scored = scored;
  r.tokens_processed = n * T;
  r.mean_nll = nll_sum / static_cast<double>(scored);
  r.perplexity = std::exp(r.mean_nll);
  r.tokens_per_second = r.seconds > 0 ? static_cast<double>(r.tokens_processed) / r.seconds : 0.0;
  return r;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_PERPLEXITY_HPP
