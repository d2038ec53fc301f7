// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_METHODS_HPP
#define RCPU_MODEL_METHODS_HPP

/// \file methods.hpp
/// The pruning methods of the RCPU paper's comparison (and rcpu's additions) as named presets of
/// PipelineOptions, shared by `rcpu prune-model` and rcpu-prune-study so that a name means the same
/// configuration everywhere (docs/pipeline.md, docs/results.md).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <string>
#include <utility>
#include <vector>

#include "../compensation.hpp"
#include "../detail/checks.hpp"
#include "../scores.hpp"
#include "pipeline.hpp"

namespace rcpu {
namespace model {

/// One named method: its id and a readable name (method_options() gives its PipelineOptions; every id
/// here has a branch there, tests/pipeline checks each one runs).
struct MethodPreset {
  const char* id;
  const char* name;
};

/// Every preset, in the order of the paper's tables.
inline const std::vector<MethodPreset>& method_presets() {
  static const std::vector<MethodPreset> p = {
      {"wanda_sp", "Wanda-sp (no compensation)"},
      {"flap", "FLAP (WIFV + bias)"},
      {"flap_alam", "FLAP (WIFV + bias), AL-AM allocation"},
      {"rcpu_none", "RCPU score, no compensation"},
      {"rcpu_rotation", "RCPU rotation"},
      {"rcpu_rotation_scale", "RCPU rotation + scale"},
      {"rcpu_rotation_bias", "RCPU rotation + bias (ours)"},
      {"rcpu_rotation_per_head", "RCPU per-head block rotation on o_proj (ours)"},
      {"rcpu_rotation_proper", "RCPU proper rotation, det fix (ours)"},
      {"rcpu_rotation_o_only", "RCPU rotation, o_proj only"},
      {"rcpu_rotation_down_only", "RCPU rotation, down_proj only"},
      {"rcpu_rotation_alam", "RCPU rotation, AL-AM allocation"},
      {"ridge", "proximal ridge LS(lambda)"},
      {"rcpu_rotation_ridge", "ridge toward the rotation (ours)"}};
  return p;
}

/// The id of a short alias (`rotation` for rcpu_rotation, `none` for rcpu_none, ...), or `id` itself.
inline std::string method_id(const std::string& id) {
  static const std::vector<std::pair<const char*, const char*>> alias = {
      {"none", "rcpu_none"},
      {"rotation", "rcpu_rotation"},
      {"rotation_scale", "rcpu_rotation_scale"},
      {"rotation_bias", "rcpu_rotation_bias"},
      {"per_head", "rcpu_rotation_per_head"},
      {"proximal_ridge", "ridge"},
      {"rotation_ridge", "rcpu_rotation_ridge"}};
  for (const auto& a : alias)
    if (id == a.first) return a.second;
  return id;
}

/// The readable name of a method id (or alias). \throws rcpu::invalid_argument if unknown.
inline const char* method_name(const std::string& id) {
  const std::string m = method_id(id);
  for (const MethodPreset& p : method_presets())
    if (m == p.id) return p.name;
  std::string all;
  for (const MethodPreset& p : method_presets()) all += std::string(all.empty() ? "" : ", ") + p.id;
  rcpu::detail::fail("unknown method '" + id + "' (" + all +
                     "; aliases none, rotation, rotation_scale, rotation_bias, per_head, proximal_ridge, rotation_ridge)");
}

/// PipelineOptions of a method at `ratio` (other fields at their defaults; a ridge's strength is
/// PipelineOptions::relative_lambda, to be set by the caller). \throws rcpu::invalid_argument if unknown.
inline PipelineOptions method_options(const std::string& id, double ratio) {
  const std::string m = method_id(id);
  (void)method_name(m);  // unknown ids throw here
  PipelineOptions o;
  o.ratio = ratio;
  o.label = m;
  o.score = Score::rcpu;
  if (m == "wanda_sp") {
    o.score = Score::wanda_sp_rcpu;
    o.compensation = Compensation::none;
  } else if (m == "flap" || m == "flap_alam") {
    o.score = Score::flap;
    o.compensation = Compensation::bias;
    if (m == "flap_alam") o.allocation = Allocation::flap_adaptive;
  } else if (m == "rcpu_none") {
    o.compensation = Compensation::none;
  } else if (m == "rcpu_rotation_scale") {
    o.compensation = Compensation::rotation_scale;
  } else if (m == "rcpu_rotation_bias") {
    o.compensation = Compensation::rotation_bias;
  } else if (m == "ridge") {
    o.compensation = Compensation::proximal_ridge;
  } else if (m == "rcpu_rotation_ridge") {
    o.score = Score::rcpu;
    o.compensation = Compensation::rotation_ridge;
  } else {  // the rotation and its variants
    o.compensation = Compensation::rotation;
    if (m == "rcpu_rotation_alam") o.allocation = Allocation::flap_adaptive;
    if (m == "rcpu_rotation_per_head") o.o_proj_rotation = OprojRotation::per_head;
    if (m == "rcpu_rotation_proper") o.compensation_options.procrustes.proper_rotation = true;
    if (m == "rcpu_rotation_o_only") o.compensate_mlp = false;
    if (m == "rcpu_rotation_down_only") o.compensate_attention = false;
  }
  return o;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_METHODS_HPP
