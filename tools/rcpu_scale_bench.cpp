// rcpu-scale-bench: the streamed pipeline (rcpu/model/streamed.hpp) on a model of LLaMA-7B's shapes.
//
//   rcpu-scale-bench synth OUT.gguf [--shape 7b|tiny] [--type f16|q8_0|f32] [--seed S] [--layers N]
//       writes a synthetic LLaMA GGUF: 7b is LLaMA-7B's shapes (32 layers, d 4096, 32 heads of 128,
//       FFN 11008, vocab 32000); tiny (2 layers, d 256, 4 heads of 64, FFN 704, vocab 512) is for the
//       smoke test. Deterministic random weights with LLM-like column scales (below). Refuses, before
//       writing anything, when the disk lacks the space.
//   rcpu-scale-bench prune IN.gguf OUT.gguf [--windows 8] [--seq 128] [--ratio 0.2] [--type f16]
//       [--method rotation] [--threads N] [--csv FILE]
//       prunes IN with the streamed pipeline on random token windows and prints, per layer, the time
//       of the forward passes, the statistics, the Procrustes decompositions and the rest of the
//       compensation (and the load/write around them); --csv writes the same table.
//
// The weights: W[i][j] = sigma * c_j * z_ij with z_ij nearly N(0, 1) (Irwin-Hall on splitmix64), sigma =
// 1/sqrt(d_in), column scales c_j = exp(0.6 n_j) (n_j ~ N(0, 1)) and every 512th column 8x larger (the
// outlier channels of real LLMs); norm weights 1 + 0.1 n. The numbers of a run say how fast and how big,
// not how good: a random model has no language to keep.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <rcpu/io/gguf.hpp>
#include <rcpu/io/gguf_writer.hpp>
#include <rcpu/kernels.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/streamed.hpp>

#ifdef RCPU_TOOL_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

using rcpu::Index;
namespace fs = std::filesystem;

struct Shape {
  Index layers, d, heads, kv_heads, head_dim, ffn, vocab;
};

const Shape kLlama7b{32, 4096, 32, 32, 128, 11008, 32000};
const Shape kTiny{2, 256, 4, 4, 64, 704, 512};

std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Nearly normal values, deterministic from the seed: the sum of four uniform 16-bit parts of one
// 64-bit draw, centred and scaled to variance 1 (Irwin-Hall; a few ns each, where Box-Muller's
// logarithm and cosine would take hours over 6.7 billion weights).
struct Normal {
  std::uint64_t state;
  double next() {
    const std::uint64_t r = splitmix(state);
    const double s = double(r & 0xFFFF) + double((r >> 16) & 0xFFFF) + double((r >> 32) & 0xFFFF) + double(r >> 48);
    return (s / 65536.0 - 2.0) * 1.7320508075688772;  // variance of the sum of 4 U(0,1): 1/3
  }
};

std::uint64_t name_seed(const std::string& name, std::uint64_t seed) {
  std::uint64_t h = 1469598103934665603ull ^ seed;
  for (const char c : name) h = (h ^ std::uint8_t(c)) * 1099511628211ull;
  return h;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rcpu-scale-bench: %s\n", what.c_str());
  std::exit(1);
}

int synth(const std::string& out, const Shape& s, rcpu::io::GgmlType type, std::uint64_t seed) {
  rcpu::io::GgufWriter w;
  const std::string a = "llama.";
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "rcpu synthetic LLaMA (random weights)");
  w.set_u32(a + "context_length", 4096);
  w.set_u32(a + "embedding_length", std::uint32_t(s.d));
  w.set_u32(a + "block_count", std::uint32_t(s.layers));
  w.set_u32(a + "feed_forward_length", std::uint32_t(s.ffn));
  w.set_u32(a + "attention.head_count", std::uint32_t(s.heads));
  w.set_u32(a + "attention.head_count_kv", std::uint32_t(s.kv_heads));
  w.set_u32(a + "rope.dimension_count", std::uint32_t(s.head_dim));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32(a + "vocab_size", std::uint32_t(s.vocab));
  const auto matrix = [&](const std::string& name, Index rows, Index cols) {
    w.add_tensor_source(name, type, {std::uint64_t(cols), std::uint64_t(rows)}, [=](std::uint8_t* bytes) {
      Normal n{name_seed(name, seed)};
      std::vector<float> scale(static_cast<std::size_t>(cols));
      for (Index j = 0; j < cols; ++j) scale[std::size_t(j)] = float(std::exp(0.6 * n.next()) * (j % 512 == 7 ? 8.0 : 1.0));
      const double sigma = 1.0 / std::sqrt(double(cols));
      std::vector<float> row(static_cast<std::size_t>(cols));
      const std::uint64_t row_bytes = rcpu::io::ggml_bytes(type, std::uint64_t(cols));
      for (Index i = 0; i < rows; ++i) {
        for (Index j = 0; j < cols; ++j) row[std::size_t(j)] = float(sigma * n.next()) * scale[std::size_t(j)];
        rcpu::io::quantize(type, row.data(), std::uint64_t(cols), bytes + std::uint64_t(i) * row_bytes);
      }
    });
  };
  const auto norm = [&](const std::string& name) {
    w.add_tensor_source(name, rcpu::io::GgmlType::f32, {std::uint64_t(s.d)}, [=](std::uint8_t* bytes) {
      Normal n{name_seed(name, seed)};
      std::vector<float> v(static_cast<std::size_t>(s.d));
      for (float& x : v) x = float(1.0 + 0.1 * n.next());
      rcpu::io::quantize(rcpu::io::GgmlType::f32, v.data(), v.size(), bytes);
    });
  };
  matrix("token_embd.weight", s.vocab, s.d);
  norm("output_norm.weight");
  matrix("output.weight", s.vocab, s.d);
  for (Index l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", s.heads * s.head_dim, s.d);
    matrix(p + "attn_k.weight", s.kv_heads * s.head_dim, s.d);
    matrix(p + "attn_v.weight", s.kv_heads * s.head_dim, s.d);
    matrix(p + "attn_output.weight", s.d, s.heads * s.head_dim);
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", s.ffn, s.d);
    matrix(p + "ffn_up.weight", s.ffn, s.d);
    matrix(p + "ffn_down.weight", s.d, s.ffn);
  }
  const std::uint64_t need = w.file_size();
  std::error_code ec;
  const fs::path dir = fs::absolute(out, ec).parent_path();
  const fs::space_info sp = fs::space(dir, ec);
  if (ec) die("cannot read the free space of " + dir.string() + ": " + ec.message());
  // The file plus 1 GiB to spare, so that the disk is not left full.
  if (sp.available < need + (std::uint64_t(1) << 30))
    die("the synthetic model needs " + std::to_string(need >> 20) + " MiB (+1 GiB to spare) in " + dir.string() +
        ", " + std::to_string(sp.available >> 20) + " MiB are free; nothing was written");
  const auto t0 = std::chrono::steady_clock::now();
  w.write(out);
  std::printf("rcpu-scale-bench: wrote %s (%.2f GiB, %s, %ld layers) in %.0f s\n", out.c_str(), double(need) / (1 << 30),
              rcpu::io::to_string(type), long(s.layers),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

double peak_rss_mib() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

int prune(const std::string& in, const std::string& out, Index windows, Index seq, double ratio,
          rcpu::io::GgmlType type, const std::string& method, const std::string& csv) {
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(in);
  const rcpu::model::LlamaGgufReader reader(file);
  const rcpu::model::LlamaConfig& c = reader.config();
  // The spool and the output: the pruned layers twice at most (the file's own type), plus 1 GiB.
  std::error_code ec;
  const fs::path out_dir = fs::absolute(out).parent_path();
  const fs::space_info sp = fs::space(out_dir, ec);
  if (ec) die("cannot read the free space of " + out_dir.string() + ": " + ec.message());
  const std::uint64_t need = 2 * std::uint64_t(file.file_size()) * rcpu::io::ggml_bytes(type, 256) /
                             std::max<std::uint64_t>(1, rcpu::io::ggml_bytes(file.tensor("blk.0.ffn_up.weight").type, 256));
  if (sp.available < need + (std::uint64_t(1) << 30))
    die("the output and its spool need up to " + std::to_string(need >> 20) + " MiB (+1 GiB), " +
        std::to_string(sp.available >> 20) + " MiB are free");
  // Random token windows: the timing does not depend on the text.
  std::uint64_t st = 20251009;
  std::vector<std::int32_t> calib(static_cast<std::size_t>(windows * seq));
  for (auto& t : calib) t = std::int32_t(splitmix(st) % std::uint64_t(c.vocab));
  rcpu::model::PipelineOptions o = rcpu::model::method_options(method, ratio);
  o.ratio = ratio;
  o.seq_len = seq;
  o.chunk_windows = std::max<Index>(1, std::min<Index>(windows, 4));
  rcpu::model::ExportOptions ex;
  ex.type = type;
  std::printf("rcpu-scale-bench: %s: %ld layers, d %ld, %ld heads of %ld, FFN %ld; %s at %.0f%% on %ld windows of "
              "%ld tokens (%ld tokens); writing %s (%s)\n",
              in.c_str(), long(c.n_layers), long(c.d_model), long(c.n_heads), long(c.head_dim), long(c.ffn),
              rcpu::model::method_name(method), 100 * ratio, long(windows), long(seq), long(windows * seq), out.c_str(),
              rcpu::io::to_string(type));
  std::fflush(stdout);
  std::vector<double> wall;
  auto last = std::chrono::steady_clock::now();
  const auto t0 = last;
  const rcpu::model::StreamedResult r = rcpu::model::prune_model_streamed(
      file, calib, o, {{out, ex}}, nullptr, &std::cout, [&](Index l, Index n) {
        const auto now = std::chrono::steady_clock::now();
        wall.push_back(std::chrono::duration<double>(now - last).count());
        last = now;
        std::printf("  layer %ld/%ld done: %.1f s wall, peak RSS so far %.0f MiB\n", long(l + 1), long(n), wall.back(),
                    peak_rss_mib());
        std::fflush(stdout);
      });
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The output reads back: its layout, and the first and last layers at their pruned sizes.
  {
    const rcpu::io::GgufFile back = rcpu::io::GgufFile::open(out);
    const rcpu::model::LlamaGgufReader rb(back);
    for (const Index l : {Index(0), rb.n_layers() - 1}) {
      const rcpu::model::LlamaLayer L = rb.layer(l);
      if (L.ffn() != r.result.layers[std::size_t(l)].channels || rb.n_layers() != c.n_layers ||
          L.n_heads() != r.exports.front().attention[std::size_t(l)].heads)
        die("the output does not read back as written (layer " + std::to_string(l) + ")");
    }
  }
  std::FILE* f = csv.empty() ? nullptr : std::fopen(csv.c_str(), "w");
  if (!csv.empty() && f == nullptr) die("cannot write " + csv);
  const char* header = "layer,wall_s,forward_s,statistics_s,procrustes_s,compensation_s,load_write_s,prune_s\n";
  std::printf("%s", header);
  if (f) std::fprintf(f, "%s", header);
  double sum[7] = {};
  for (std::size_t l = 0; l < r.result.layers.size(); ++l) {
    const rcpu::model::LayerOutcome& x = r.result.layers[l];
    const double procrustes = x.attention.seconds_procrustes + x.mlp.seconds_procrustes;
    const double v[7] = {wall[l], x.seconds_dense - x.seconds_statistics + x.seconds_forward, x.seconds_statistics,
                         procrustes, x.seconds_prune - procrustes, wall[l] - x.seconds(), x.seconds_prune};
    char line[256];
    std::snprintf(line, sizeof line, "%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n", l, v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    std::printf("%s", line);
    if (f) std::fputs(line, f);
    for (int i = 0; i < 7; ++i) sum[i] += v[i];
  }
  if (f) std::fclose(f);
  const double n = double(r.result.layers.size());
  std::printf("mean per layer: wall %.2f s = forward %.2f + statistics %.2f + Procrustes %.2f + compensation %.2f + "
              "load/write %.2f; pruning both modules from their statistics %.2f s\n",
              sum[0] / n, sum[1] / n, sum[2] / n, sum[3] / n, sum[4] / n, sum[5] / n, sum[6] / n);
  std::printf("total %.0f s (finishing the file %.0f s); parameters %ld -> %ld; output %.2f GiB; peak RSS %.0f MiB\n",
              total, r.seconds_write, long(r.result.parameters_dense), long(r.result.parameters),
              double(r.exports.front().file_bytes) / (1 << 30), peak_rss_mib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() < 2 || (args[0] != "synth" && args[0] != "prune")) {
    std::fprintf(stderr,
                 "usage: rcpu-scale-bench synth OUT.gguf [--shape 7b|tiny] [--type f16|q8_0|f32] [--seed S] [--layers N]\n"
                 "       rcpu-scale-bench prune IN.gguf OUT.gguf [--windows 8] [--seq 128] [--ratio 0.2] [--type f16]\n"
                 "                        [--method rotation] [--threads N] [--csv FILE]\n");
    return 2;
  }
  std::vector<std::string> pos;
  std::string shape = "7b", type = "f16", method = "rotation", csv;
  long windows = 8, seq = 128, threads = 0;
  double ratio = 0.2;
  std::uint64_t seed = 1;
  long layers = 0;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto next = [&]() -> const std::string& {
      if (i + 1 >= args.size()) die(a + " needs a value");
      return args[++i];
    };
    if (a == "--shape") shape = next();
    else if (a == "--type") type = next();
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--layers") layers = std::stol(next());
    else if (a == "--windows") windows = std::stol(next());
    else if (a == "--seq") seq = std::stol(next());
    else if (a == "--ratio") ratio = std::stod(next());
    else if (a == "--method") method = next();
    else if (a == "--threads") threads = std::stol(next());
    else if (a == "--csv") csv = next();
    else if (a.rfind("--", 0) == 0) die("unknown option " + a);
    else pos.push_back(a);
  }
#ifdef RCPU_TOOL_OPENBLAS
  if (threads > 0) openblas_set_num_threads(static_cast<int>(threads));
#endif
  if (threads > 0) Eigen::setNbThreads(static_cast<int>(threads));
  try {
    const rcpu::io::GgmlType t = rcpu::io::ggml_type_from_string(type, true);
    if (args[0] == "synth") {
      if (pos.size() != 1) die("synth needs OUT.gguf");
      if (shape != "7b" && shape != "tiny") die("--shape must be 7b or tiny");
      Shape sh = shape == "7b" ? kLlama7b : kTiny;
      if (layers > 0) sh.layers = layers;  // fewer layers of the same shapes (quick per-layer timings)
      return synth(pos[0], sh, t, seed);
    }
    if (pos.size() != 2) die("prune needs IN.gguf OUT.gguf");
    if (windows < 1 || seq < 2 || !(ratio >= 0 && ratio < 1)) die("--windows >= 1, --seq >= 2, --ratio in [0, 1)");
    return prune(pos[0], pos[1], windows, seq, ratio, t, method, csv);
  } catch (const std::exception& e) {
    die(e.what());
  }
}
