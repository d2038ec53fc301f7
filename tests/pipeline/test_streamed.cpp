// The streamed pipeline (rcpu/model/streamed.hpp: the dense model read one layer at a time from its
// GGUF file, each pruned layer written as soon as it is done) against the in-memory one: for every
// configuration, the file prune_model_streamed() writes is byte for byte the file that prune_model()
// and gguf_writer() give, and the pipeline results agree (kept units, parameters, reports). The
// configurations cover the export's paths: uneven GQA groups rewritten (the GQA fix), per-layer sizes
// (deci), bias tensors, F16 fallback of rows that do not fill Q8_0 blocks, several output types in
// one run, dense statistics and FLAP's allocation. Also: a failure leaves no file and no spool.
//
// Usage: test_streamed [MODEL [WINDOWS]]: stories260K (default) with every configuration, or another
// model (SmolLM2: tests/pipeline/CMakeLists.txt) with the rotation (Q8_0 and F16 files) on WINDOWS windows
// of 128 tokens (default 8). Prints "SKIPPED: ..." and returns 77 (CTest: skipped) when the model or
// the text is absent. The data folder is RCPU_DATA_DIR if set, else ../shared/data.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include <rcpu/io/gguf.hpp>
#include <rcpu/model/export.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/provenance.hpp>
#include <rcpu/model/streamed.hpp>
#include <rcpu/model/tokenizer.hpp>

#include "../standalone_checks.hpp"

namespace {

using rcpu::Index;
using rcpu::model::PipelineOptions;
using rcpu_test::check;
using rcpu_test::read_text;
namespace fs = std::filesystem;


// Equal, or both NaN (the report of a module with nothing removed).
bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}


struct Case {
  std::string name;
  PipelineOptions options;
  std::vector<rcpu::model::ExportOptions> exports;  // one output file each
};

// One configuration: in memory, then streamed; every file and the results compared.
void run_case(const Case& k, const rcpu::io::GgufFile& file, const rcpu::model::LlamaModel& dense,
              const std::vector<std::int32_t>& calib, const fs::path& dir) {
  rcpu::model::CalibrationInfo info;
  info.text = "wikitext-2-raw-test.txt (start)";
  info.windows = Index(calib.size()) / k.options.seq_len;
  info.seq_len = k.options.seq_len;
  info.seed = 7;
  const rcpu::model::PipelineResult mem = rcpu::model::prune_model(dense, calib, k.options);
  std::vector<rcpu::model::StreamedTarget> targets;
  for (std::size_t i = 0; i < k.exports.size(); ++i)
    targets.push_back({(dir / (k.name + "-" + std::to_string(i) + ".gguf")).string(), k.exports[i]});
  const rcpu::model::StreamedResult st = rcpu::model::prune_model_streamed(file, calib, k.options, targets, &info);
  const rcpu::model::PipelineResult& r = st.result;
  check(r.model.n_layers() == 0, k.name + ": the streamed result holds no model");
  check(r.parameters == mem.parameters && r.parameters_dense == mem.parameters_dense,
        k.name + ": parameters " + std::to_string(r.parameters) + " vs " + std::to_string(mem.parameters));
  check(r.parameters == mem.model.parameter_count(), k.name + ": the parameter count is the pruned model's");
  bool same_layers = r.layers.size() == mem.layers.size();
  for (std::size_t l = 0; same_layers && l < r.layers.size(); ++l) {
    const auto &a = r.layers[l], &b = mem.layers[l];
    same_layers = a.kept_heads == b.kept_heads && a.kept_channels == b.kept_channels && a.kv_heads == b.kv_heads &&
                  same(a.attention.after.relative_error, b.attention.after.relative_error) &&
                  same(a.mlp.after.relative_error, b.mlp.after.relative_error) && a.lambda_mlp == b.lambda_mlp &&
                  a.det_attention == b.det_attention && a.parameters == b.parameters;
  }
  check(same_layers, k.name + ": the same kept units and reports per layer");
  check(st.exports.size() == k.exports.size(), k.name + ": one export report per target");
  for (std::size_t i = 0; i < k.exports.size(); ++i) {
    rcpu::model::ExportOptions ex = k.exports[i];
    ex.metadata = rcpu::model::provenance(mem, info);
    rcpu::model::ExportReport rep;
    const std::vector<std::uint8_t> want = rcpu::model::gguf_writer(mem.model, &file, ex, &rep).to_bytes();
    const std::vector<std::uint8_t> got = read_bytes(targets[i].path);
    check(!got.empty() && got == want, k.name + " file " + std::to_string(i) + " (" + rcpu::io::to_string(ex.type) +
                                           "): " + std::to_string(got.size()) + " bytes streamed, " +
                                           std::to_string(want.size()) + " in memory, identical");
    const rcpu::model::ExportReport& s = st.exports[i];
    check(s.architecture == rep.architecture && s.channels == rep.channels && s.f16_fallback == rep.f16_fallback &&
              s.parameters == rep.parameters && s.file_bytes == rep.file_bytes && s.file_bytes == got.size(),
          k.name + ": the same export report (" + s.architecture + ", " + std::to_string(s.f16_fallback.size()) +
              " F16 fallbacks)");
    check(!fs::exists(targets[i].path + ".rcpu-spool"), k.name + ": the spool is gone");
  }
  std::cout << "  " << k.name << ": " << r.layers.size() << " layers, parameters " << r.parameters_dense << " -> "
            << r.parameters << ", " << k.exports.size() << " file(s) identical\n";
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  const bool other_model = argc > 1 && std::string(argv[1]).size() > 0;
  const std::string model_path = other_model ? std::string(argv[1]) : data + "/stories260K.gguf";
  for (const std::string& f : {model_path, data + "/wikitext-2-raw-test.txt"})
    if (!std::ifstream(f)) {
      std::cout << "SKIPPED: " << f << " not found (see docs/models.md; set RCPU_DATA_DIR"
                << (other_model ? "; tools/fetch_smollm2.sh fetches SmolLM2" : "") << ")\n";
      return 77;
    }
  const fs::path dir = fs::temp_directory_path() / ("rcpu-test-streamed-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  try {
    const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(model_path);
    const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
    const rcpu::model::LlamaModel dense = rcpu::model::LlamaModel::from_gguf(file);
    const Index seq = other_model ? 128 : 32;
    const Index windows = other_model ? (argc > 2 ? Index(std::atol(argv[2])) : 8) : 9;
    const std::vector<std::int32_t> ids = tok.encode(read_text(data + "/wikitext-2-raw-test.txt", 200000));
    if (Index(ids.size()) < windows * seq) throw rcpu::invalid_argument("the text is too short for the windows");
    const std::vector<std::int32_t> calib(ids.begin(), ids.begin() + windows * seq);
    std::cout << model_path << ": " << windows << " calibration windows of " << seq << "\n";

    // The embedding rows the reader gives are the loaded model's.
    const rcpu::model::LlamaGgufReader reader(file);
    check(reader.embed(calib) == dense.embed(calib), "LlamaGgufReader::embed equals LlamaModel::embed");
    check(reader.layer(0).wo == dense.layer(0).wo && reader.layer(0).head_kv == dense.layer(0).head_kv,
          "LlamaGgufReader::layer equals the loaded layer");

    const auto opts = [&](double ratio, rcpu::Compensation c) {
      PipelineOptions o;
      o.ratio = ratio;
      o.compensation = c;
      o.seq_len = seq;
      o.chunk_windows = 4;  // several chunks per pass
      o.label = rcpu::to_string(c);
      if (c == rcpu::Compensation::proximal_ridge) o.relative_lambda = 0.03;
      return o;
    };
    rcpu::model::ExportOptions f32, q8, f16;
    q8.type = rcpu::io::GgmlType::q8_0;
    f16.type = rcpu::io::GgmlType::f16;
    std::vector<Case> cases;
    // Another model (SmolLM2, in CI): the rotation only, to Q8_0 and F16 at once (CI time: F32, a
    // plain copy of the floats, is checked on stories260K and would add two 540 MB files).
    if (other_model) cases.push_back({"rotation-20", opts(0.2, rcpu::Compensation::rotation), {q8, f16}});
    if (!other_model) {
      cases.push_back({"rotation-20", opts(0.2, rcpu::Compensation::rotation), {f32, q8}});
      cases.push_back({"ridge-30", opts(0.3, rcpu::Compensation::proximal_ridge), {f16}});
      Case bias{"rotation_bias-30-kv_groups", opts(0.3, rcpu::Compensation::rotation_bias), {q8}};
      bias.options.gqa = rcpu::model::GqaRule::kv_groups;
      cases.push_back(bias);
      Case flap{"flap-adaptive-dense-stats", opts(0.2, rcpu::Compensation::bias), {f32}};
      flap.options.score = rcpu::Score::flap;
      flap.options.allocation = rcpu::model::Allocation::flap_adaptive;
      flap.options.statistics = rcpu::model::StatisticsSource::dense;
      cases.push_back(flap);
      Case rounded{"rotation_scale-20-round32", opts(0.2, rcpu::Compensation::rotation_scale), {q8}};
      rounded.options.round_to = 32;
      cases.push_back(rounded);
    }
    for (const Case& k : cases) run_case(k, file, dense, calib, dir);

    // A failure (Q4_0 rows that do not fill its blocks, F16 not allowed) leaves no file and no spool,
    // also for the other target of the same run.
    if (!other_model) {
      rcpu::model::ExportOptions strict;
      strict.type = rcpu::io::GgmlType::q4_0;
      strict.fallback_f16 = false;
      const std::string a = (dir / "fail-a.gguf").string(), b = (dir / "fail-b.gguf").string();
      bool threw = false;
      try {
        rcpu::model::prune_model_streamed(file, calib, opts(0.3, rcpu::Compensation::rotation), {{a, f32}, {b, strict}});
      } catch (const rcpu::invalid_argument& e) {
        threw = std::string(e.what()).find("block size") != std::string::npos;
      }
      check(threw, "rows that do not fill Q4_0 blocks are refused, naming the block size");
      check(!fs::exists(a) && !fs::exists(b) && !fs::exists(a + ".rcpu-spool") && !fs::exists(b + ".rcpu-spool"),
            "the failed run left no file and no spool");
    }
  } catch (const std::exception& e) {
    check(false, std::string("exception: ") + e.what());
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return rcpu_test::finish();
}
