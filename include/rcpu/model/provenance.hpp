// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_PROVENANCE_HPP
#define RCPU_MODEL_PROVENANCE_HPP

/// \file provenance.hpp
/// How a pruned model was made, as rcpu.* GGUF metadata for the file it is exported to
/// (ExportOptions::metadata, export.hpp): rcpu's version, the method, the calibration, parameter
/// counts, and per layer the kept query heads and MLP channels as indices into the dense model.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../io/gguf.hpp"
#include "pipeline.hpp"

namespace rcpu {
namespace model {

/// Where a pruned model's calibration came from, for provenance().
struct CalibrationInfo {
  std::string text;         ///< the calibration text (a file name, say)
  Index windows = 0;        ///< windows of seq_len tokens
  Index seq_len = 0;
  std::uint64_t seed = 0;
};

/// rcpu.* metadata that records how a pipeline result was made: rcpu's version, the method (label,
/// score, compensation, ratios, GQA rule, allocation, o_proj rotation, statistics source, rounding,
/// ridge strength), the calibration,
/// parameter counts, and per layer the kept query heads and MLP channels (dense indices).
inline std::vector<std::pair<std::string, io::GgufValue>> provenance(const PipelineResult& r, const CalibrationInfo& calib) {
  using io::GgufValue;
  using io::GgufValueType;
  std::vector<std::pair<std::string, GgufValue>> m;
  const auto str = [&](const std::string& k, const std::string& v) { m.emplace_back("rcpu." + k, GgufValue::make_string(v)); };
  const auto u64 = [&](const std::string& k, std::uint64_t v) {
    m.emplace_back("rcpu." + k, GgufValue::make_uint(GgufValueType::uint64, v));
  };
  const auto f64 = [&](const std::string& k, double v) {
    m.emplace_back("rcpu." + k, GgufValue::make_float(GgufValueType::float64, v));
  };
  const PipelineOptions& o = r.options;
  str("version", std::to_string(RCPU_VERSION_MAJOR) + "." + std::to_string(RCPU_VERSION_MINOR) + "." +
                     std::to_string(RCPU_VERSION_PATCH));
  str("method", o.label);
  str("score", rcpu::to_string(o.score));
  str("compensation", rcpu::to_string(o.compensation));
  f64("ratio", o.ratio);
  f64("attention_ratio", o.heads_ratio());
  f64("mlp_ratio", o.channels_ratio());
  str("gqa_rule", to_string(o.gqa));
  str("allocation", to_string(o.allocation));
  str("o_proj_rotation", to_string(o.o_proj_rotation));
  str("statistics", to_string(o.statistics));
  u64("round_to", std::uint64_t(o.round_to));
  f64("relative_lambda", o.relative_lambda);
  str("calibration.text", calib.text);
  u64("calibration.windows", std::uint64_t(calib.windows));
  u64("calibration.seq_len", std::uint64_t(calib.seq_len));
  u64("calibration.seed", calib.seed);
  u64("parameters_dense", std::uint64_t(r.parameters_dense));
  u64("parameters", std::uint64_t(r.parameters));
  for (const LayerOutcome& l : r.layers) {
    const std::string p = "layer." + std::to_string(l.layer) + ".";
    m.emplace_back("rcpu." + p + "kept_heads",
                   GgufValue::make_int_array(GgufValueType::int32, std::vector<std::int64_t>(l.kept_heads.begin(), l.kept_heads.end())));
    m.emplace_back("rcpu." + p + "kept_channels",
                   GgufValue::make_int_array(GgufValueType::int32,
                                             std::vector<std::int64_t>(l.kept_channels.begin(), l.kept_channels.end())));
  }
  return m;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_PROVENANCE_HPP
