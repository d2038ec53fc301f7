// SPDX-License-Identifier: MIT
#ifndef RCPU_MODEL_STREAMED_HPP
#define RCPU_MODEL_STREAMED_HPP

/// \file streamed.hpp
/// The pruning pipeline of pipeline.hpp on a model of any size: the dense model is read from its
/// memory-mapped GGUF file one layer at a time (dequantized to float for that layer only, its mapped
/// pages released after it), the calibration hidden states are kept once (tokens x d floats, plus the
/// attention output of the layer at hand), and each pruned layer is encoded into the output GGUF
/// as soon as it is done and then freed (StreamedExport, export.hpp). Nothing else grows with the
/// number of layers. The result is byte for byte the file that prune_model() and export_gguf()
/// write (tests/pipeline/test_streamed.cpp checks it on stories260K and SmolLM2).
///
///     const rcpu::io::GgufFile file = rcpu::io::GgufFile::open("model.gguf");
///     rcpu::model::StreamedResult r = rcpu::model::prune_model_streamed(file, calib, options, {{"pruned.gguf", {}}});
///
/// Peak memory, with d the width, f the MLP width, n the calibration tokens: one dense layer and its
/// pruned copy in float, the statistics (a Gram of f x f doubles when the compensation needs it) and
/// the compensation's double temporaries of one module, n x (d + heads * head_dim) floats of hidden
/// states; docs/scale.md measures it on a LLaMA-7B-shaped model.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../io/gguf.hpp"
#include "../io/staged_output.hpp"
#include "export.hpp"
#include "llama.hpp"
#include "pipeline.hpp"
#include "provenance.hpp"

namespace rcpu {
namespace model {

/// One output file of prune_model_streamed().
struct StreamedTarget {
  std::string path;
  ExportOptions options;
};

/// What prune_model_streamed() did: the pipeline result (its `model` is empty: the model went to
/// the files) and one export report per target.
struct StreamedResult {
  PipelineResult result;
  std::vector<ExportReport> exports;
  double seconds_write = 0;  ///< finishing the files (header and copy from the spool)
};

/// Prunes the dense model in `source` with `options` on `calibration` (as prune_model()), one layer
/// at a time, and writes it to every target (all published together when every one is complete; a
/// failure leaves none of them and existing files untouched). With `calibration_info`, the files
/// carry provenance() metadata after each target's own.
/// \throws rcpu::invalid_argument as prune_model() and export_gguf().
inline StreamedResult prune_model_streamed(const io::GgufFile& source, const std::vector<std::int32_t>& calibration,
                                           const PipelineOptions& options, const std::vector<StreamedTarget>& targets,
                                           const CalibrationInfo* calibration_info = nullptr,
                                           std::ostream* log = nullptr, const LayerCallback& on_layer = {},
                                           const StatisticsReducer& reduce = {}) {
  rcpu::detail::require(!targets.empty(), "prune_model_streamed: no output file");
  // Two names of one file would share one spool: refused before any work (canonical paths).
  for (std::size_t i = 0; i < targets.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      std::error_code e1, e2;
      const auto a = std::filesystem::weakly_canonical(targets[i].path, e1);
      const auto b = std::filesystem::weakly_canonical(targets[j].path, e2);
      rcpu::detail::require(e1 || e2 || a != b, "prune_model_streamed: outputs '" + targets[j].path + "' and '" +
                                                    targets[i].path + "' are the same file");
    }
  const LlamaGgufReader reader(source);
  const LlamaConfig& cfg = reader.config();
  detail::check_configs(cfg, calibration, {options}, "prune_model_streamed");
  // Every target is checked (and its spool created) before any work is spent.
  std::vector<std::unique_ptr<StreamedExport>> exports;
  for (const StreamedTarget& t : targets) exports.push_back(std::make_unique<StreamedExport>(reader, t.path, t.options));

  // The dense layer at hand, loaded when the pipeline asks for it, freed (and its mapped pages
  // released) when it says the layer is done.
  LlamaLayer current;
  Index loaded = -1;
  detail::DenseLayers dense;
  dense.config = cfg;
  dense.layer = [&](Index l) -> const LlamaLayer& {
    if (loaded != l) {
      current = LlamaLayer();  // free the previous layer before reading the next one
      loaded = -1;
      current = reader.layer(l);
      reader.release_layer(l);  // its mapped pages: read once, now in `current`
      loaded = l;
    }
    return current;
  };
  dense.release = [&](Index) {
    current = LlamaLayer();
    loaded = -1;
  };
  // The pipeline prunes `current` itself (moved from) instead of a copy.
  dense.owned = [&](Index l) -> LlamaLayer* {
    if (loaded != l) return nullptr;
    loaded = -1;  // moved from below: a later layer(l) reads it again
    return &current;
  };
  StreamedResult out;
  out.result = std::move(detail::prune_layers(dense, reader.embed(calibration), {options}, log, on_layer, reduce,
                                              [&](std::size_t, Index, LlamaLayer&& L) {
                                                for (auto& e : exports) e->add_layer(L);
                                              })
                             .front());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, io::GgufValue>> meta;
  if (calibration_info != nullptr) meta = provenance(out.result, *calibration_info);
  io::StagedOutput staged;
  for (auto& e : exports) out.exports.push_back(e->finish(staged, meta));
  staged.publish();
  out.seconds_write = detail::seconds_since(t0);
  return out;
}

}  // namespace model
}  // namespace rcpu

#endif  // RCPU_MODEL_STREAMED_HPP
