// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_GQA_HPP
#define RCPU_MODEL_GQA_HPP

/// \file gqa.hpp
/// Uniform grouped-query attention: llama.cpp (and most runtimes) need every KV head of a layer to
/// serve the same number of consecutive query heads (query head h reads KV head h / (n_heads /
/// n_kv_heads)); a pruned layer whose KV groups lost different numbers of query heads is rewritten
/// exactly by make_uniform_gqa(): groups of S query heads per written KV head, a group of s heads
/// becoming ceil(s / S) KV heads (copies of its KV head) and zero query heads to fill the last one (zero
/// rows of wq, zero columns of wo: a zero head contributes exactly 0). S = max group size only pads
/// (the KV cache does not grow); S = gcd only duplicates KV heads; GqaFix::cheapest takes the S with
/// the fewest written rows.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "llama.hpp"

namespace rcpu {
namespace model {

/// How export makes a layer's grouped-query attention uniform (see the file comment).
enum class GqaFix {
  cheapest,      ///< the group size with the fewest written parameters (ties: the larger group, less KV cache)
  pad_queries,   ///< zero query heads up to the largest group; the KV heads as they are
  duplicate_kv   ///< copies of KV heads, groups of gcd(group sizes) query heads; no padding
};

inline const char* to_string(GqaFix f) {
  switch (f) {
    case GqaFix::cheapest: return "cheapest";
    case GqaFix::pad_queries: return "pad_queries";
    case GqaFix::duplicate_kv: return "duplicate_kv";
  }
  return "unknown";
}
/// Parses the names printed by to_string(GqaFix). \throws rcpu::invalid_argument if unknown.
inline GqaFix gqa_fix_from_string(const std::string& s) {
  for (GqaFix f : {GqaFix::cheapest, GqaFix::pad_queries, GqaFix::duplicate_kv})
    if (s == to_string(f)) return f;
  rcpu::detail::fail("unknown GQA fix '" + s + "' (cheapest, pad_queries, duplicate_kv)");
}

/// The uniform layout of one layer's attention as written.
struct UniformGqa {
  Index group = 0;          ///< query heads per written KV head
  Index heads = 0;          ///< query heads written (real + zero)
  Index kv_heads = 0;       ///< KV heads written (distinct + copies)
  Index zero_heads = 0;     ///< zero query heads added
  Index kv_copies = 0;      ///< KV heads written more than once (extra copies)
  bool changed() const { return zero_heads != 0 || kv_copies != 0; }
};

/// The layout `fix` gives a layer whose query head i reads KV head head_kv[i] (of n_kv).
/// \throws rcpu::invalid_argument if a KV head is out of range or no query head is left.
inline UniformGqa plan_uniform_gqa(const std::vector<Index>& head_kv, Index n_kv, GqaFix fix) {
  rcpu::detail::require(!head_kv.empty() && n_kv >= 1, "plan_uniform_gqa: a layer needs a query head and a KV head");
  std::vector<Index> size(static_cast<std::size_t>(n_kv), 0);
  for (const Index g : head_kv) {
    rcpu::detail::require(g >= 0 && g < n_kv, "plan_uniform_gqa: KV head " + std::to_string(g) + " is outside [0, " +
                                                  std::to_string(n_kv) + ")");
    ++size[static_cast<std::size_t>(g)];
  }
  Index smax = 0, sgcd = 0;
  for (const Index s : size)
    if (s > 0) {
      smax = std::max(smax, s);
      sgcd = std::gcd(sgcd, s);
    }
  const auto layout = [&](Index S) {
    UniformGqa u;
    u.group = S;
    Index used = 0;
    for (const Index s : size) {
      if (s == 0) continue;
      ++used;
      const Index chunks = (s + S - 1) / S;
      u.kv_heads += chunks;
      u.heads += chunks * S;
    }
    u.zero_heads = u.heads - Index(head_kv.size());
    u.kv_copies = u.kv_heads - used;
    return u;
  };
  if (fix == GqaFix::pad_queries) return layout(smax);
  if (fix == GqaFix::duplicate_kv) return layout(sgcd);
  UniformGqa best = layout(smax);
  for (Index S = smax - 1; S >= 1; --S) {
    const UniformGqa u = layout(S);
    if (u.heads + u.kv_heads < best.heads + best.kv_heads) best = u;  // q+o and k+v rows cost the same
  }
  return best;
}

/// The layer rewritten with the layout of plan_uniform_gqa(): query heads grouped by KV head (group
/// after group, in the order of their KV heads), each chunk of `group` query heads with its own copy
/// of the KV head and zero heads at the end of a group's last chunk. The result computes the same
/// function of its input (up to the order of the sums in o_proj); head_ids of zero heads are -1.
inline LlamaLayer make_uniform_gqa(const LlamaLayer& L, GqaFix fix, UniformGqa* plan = nullptr) {
  const UniformGqa u = plan_uniform_gqa(L.head_kv, L.n_kv_heads(), fix);
  if (plan != nullptr) *plan = u;
  const Index hd = L.head_dim, d = L.wq.cols(), S = u.group;
  LlamaLayer out = L;
  out.wq = Eigen::MatrixXf::Zero(u.heads * hd, d);
  out.wo = Eigen::MatrixXf::Zero(L.wo.rows(), u.heads * hd);
  out.wk.resize(u.kv_heads * hd, d);
  out.wv.resize(u.kv_heads * hd, d);
  out.head_kv.assign(static_cast<std::size_t>(u.heads), 0);
  out.head_ids.assign(static_cast<std::size_t>(u.heads), -1);
  Index qh = 0, kvh = 0;
  for (Index g = 0; g < L.n_kv_heads(); ++g) {
    std::vector<Index> members;
    for (Index h = 0; h < L.n_heads(); ++h)
      if (L.head_kv[std::size_t(h)] == g) members.push_back(h);
    for (std::size_t m0 = 0; m0 < members.size(); m0 += std::size_t(S)) {
      out.wk.middleRows(kvh * hd, hd) = L.wk.middleRows(g * hd, hd);
      out.wv.middleRows(kvh * hd, hd) = L.wv.middleRows(g * hd, hd);
      for (Index j = 0; j < S; ++j, ++qh) {
        out.head_kv[std::size_t(qh)] = kvh;
        const std::size_t m = m0 + std::size_t(j);
        if (m >= members.size()) continue;  // a zero head
        const Index h = members[m];
        out.wq.middleRows(qh * hd, hd) = L.wq.middleRows(h * hd, hd);
        out.wo.middleCols(qh * hd, hd) = L.wo.middleCols(h * hd, hd);
        out.head_ids[std::size_t(qh)] = L.head_ids.empty() ? h : L.head_ids[std::size_t(h)];
      }
      ++kvh;
    }
  }
  return out;
}

/// Whether a layer already has llama.cpp's layout: query head h reads KV head h / (n_heads / n_kv).
inline bool has_uniform_gqa(const LlamaLayer& L) {
  const Index H = L.n_heads(), K = L.n_kv_heads();
  if (K == 0 || H % K != 0) return false;
  for (Index h = 0; h < H; ++h)
    if (L.head_kv[std::size_t(h)] != h / (H / K)) return false;
  return true;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_GQA_HPP
