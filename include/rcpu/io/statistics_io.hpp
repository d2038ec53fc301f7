// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_STATISTICS_IO_HPP
#define RCPU_IO_STATISTICS_IO_HPP

/// \file statistics_io.hpp
/// Saves and loads rcpu::Statistics as a directory of .npy files, so that statistics accumulated in
/// separate runs (token shards, machines, a Python pipeline) can be stored and merged exactly later.
///
/// Layout of a statistics directory (format version 2):
///
///     rcpu_statistics.txt   "key value" lines: format rcpu-statistics, version 2, channels d,
///                           tokens n, gram full|diagonal, and "crc32.FILE hex" for every file below
///                           (zlib's CRC-32 of its bytes); the marker identifies the directory
///     tokens.npy            int64, shape ()       n
///     sum.npy               float64, shape (d,)   sum_t x_t
///     abs_sum.npy           float64, shape (d,)   sum_t |x_t|
///     sq_sum.npy            float64, shape (d,)   sum_t x_t^2
///     m2.npy                float64, shape (d,)   sum_t (x_t - mean)^2 (kept for a stable variance)
///     gram.npy              float64, shape (d, d) sum_t x_t x_t^T (only with "gram full")
///
/// load_statistics() checks every checksum (version 1 directories, written before checksums existed,
/// have none) and the relations the values must satisfy whatever the data were (see
/// check_statistics_relations), so a damaged or hand-edited directory gets an error naming the file and
/// the broken relation instead of silently wrong pruning.
///
/// Values are the accumulator's own (AccScalar, saved as float64), so the sums, m2 and the Gram load
/// back exactly; the mean is rebuilt as sum / n by Statistics::from_sums (the accumulator's running
/// mean can differ from it in the last bit). Statistics::merge of loaded shards gives what one pass
/// over all their tokens gives, up to the order of floating-point additions. In NumPy: `n = int(np.load("dir/tokens.npy"))`,
/// `G = np.load("dir/gram.npy")`, mean = sum / n, variance = m2 / n.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <Eigen/Core>

#include "../config.hpp"
#include "../detail/checks.hpp"
#include "../error.hpp"
#include "../statistics.hpp"
#include "npy.hpp"
#include "staged_output.hpp"

namespace rcpu {
namespace io {

/// Name of the marker file that identifies a statistics directory.
inline const char* statistics_marker() { return "rcpu_statistics.txt"; }

/// Format version written by save_statistics(). load_statistics() reads it and version 1 (the same
/// files, without checksums).
constexpr int statistics_format_version = 2;

/// The files of a statistics directory besides the marker, in the order they are written.
inline const char* const* statistics_files() {
  static const char* const files[] = {"tokens.npy", "sum.npy", "abs_sum.npy", "sq_sum.npy", "m2.npy", "gram.npy", nullptr};
  return files;
}

/// CRC-32 (IEEE 802.3, as zlib.crc32 and `gzip`), fed in pieces.
class Crc32 {
 public:
  Crc32() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      m_table[i] = c;
    }
  }
  void update(const char* data, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) m_crc = m_table[(m_crc ^ static_cast<unsigned char>(data[k])) & 0xFFu] ^ (m_crc >> 8);
  }
  std::uint32_t value() const { return m_crc ^ 0xFFFFFFFFu; }

 private:
  std::uint32_t m_table[256];
  std::uint32_t m_crc = 0xFFFFFFFFu;
};

/// CRC-32 of a byte string.
inline std::uint32_t crc32(const std::string& bytes) {
  Crc32 c;
  c.update(bytes.data(), bytes.size());
  return c.value();
}

namespace detail {

[[noreturn]] inline void stats_fail(const std::string& dir, const std::string& message) {
  throw invalid_argument("statistics: " + dir + ": " + message);
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// The CRC-32 of a file, as 8 hex digits, read in 1 MiB pieces (a Gram can be gigabytes).
inline std::string file_crc32(const std::string& dir, const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) stats_fail(dir, "cannot read " + p.filename().string());
  Crc32 crc;
  std::vector<char> buf(std::size_t(1) << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    crc.update(buf.data(), std::size_t(in.gcount()));
  }
  return hex32(crc.value());
}

// Names the file and the first non-finite entry ([i] in a vector, [i,j] in a matrix).
inline void require_finite_file(const std::string& dir, const std::string& file, const Eigen::MatrixXd& m) {
  Index i = 0, j = 0;
  if (!rcpu::detail::find_non_finite(m, i, j)) return;
  std::ostringstream os;
  os << file << " has a non-finite entry " << m(i, j) << " at ";
  if (m.cols() == 1) os << "[" << i << "]"; else os << "[" << i << "," << j << "]";
  stats_fail(dir, os.str());
}

inline std::map<std::string, std::string> read_statistics_marker(const std::string& dir) {
  const std::filesystem::path p = std::filesystem::path(dir) / statistics_marker();
  std::ifstream in(p);
  if (!in) stats_fail(dir, std::string("not a statistics directory (no ") + statistics_marker() + ")");
  std::map<std::string, std::string> kv;
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    if (++lines > 64) stats_fail(dir, std::string(statistics_marker()) + " is too long");
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key, value;
    ls >> key >> value;
    if (!key.empty()) kv[key] = value;
  }
  return kv;
}

inline std::int64_t parse_marker_int(const std::string& dir, const std::map<std::string, std::string>& kv,
                                     const std::string& key) {
  const auto it = kv.find(key);
  if (it == kv.end()) stats_fail(dir, std::string(statistics_marker()) + " lacks '" + key + "'");
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size())
    stats_fail(dir, std::string(statistics_marker()) + ": '" + key + "' = '" + it->second + "' is not an integer");
  return v;
}

}  // namespace detail

/// Whether `dir` is a directory holding a statistics marker file.
inline bool is_statistics_directory(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / statistics_marker(), ec);
}

namespace detail {

// Whether `name` may be replaced by a statistics directory; returns the path without trailing '/'.
inline std::filesystem::path statistics_target(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string name = dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();  // "out/" names "out", not a child of it
  if (name.empty() || name == "/" || name == "." || name == "..") stats_fail(dir, "is not a usable output directory name");
  const fs::path target(name);
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec)) stats_fail(dir, "exists and is not a directory; refusing to replace it");
    if (!is_statistics_directory(name) && !fs::is_empty(target, ec))
      stats_fail(dir, "exists and is not a statistics directory; refusing to replace it");
  }
  return target;
}

}  // namespace detail

/// Writes statistics as a statistics directory at the staged path of `dir` in `out`: it replaces `dir`
/// when `out.publish()` succeeds, together with everything else staged there, and never otherwise.
/// \throws rcpu::invalid_argument if `dir` exists and is something else, or on a write error.
template <typename S, typename A>
void stage_statistics(StagedOutput& out, const std::string& dir, const Statistics<S, A>& stats) {
  namespace fs = std::filesystem;
  const fs::path tmp = out.stage_directory(detail::statistics_target(dir));
  std::error_code ec;
  if (!fs::create_directories(tmp, ec) || ec) detail::stats_fail(dir, "cannot create '" + tmp.string() + "'");
  const Index d = stats.channels();
  save_npy_int((tmp / "tokens.npy").string(), std::int64_t(stats.tokens()));
  save_npy_vector((tmp / "sum.npy").string(), stats.sum().template cast<double>());
  save_npy_vector((tmp / "abs_sum.npy").string(), stats.abs_sum().template cast<double>());
  save_npy_vector((tmp / "sq_sum.npy").string(), stats.sq_sum().template cast<double>());
  save_npy_vector((tmp / "m2.npy").string(), stats.m2().template cast<double>());
  // gram() refuses to run without tokens; an empty full-Gram accumulator saves zeros.
  if (stats.has_gram())
    save_npy((tmp / "gram.npy").string(), stats.tokens() > 0 ? Eigen::MatrixXd(stats.gram().template cast<double>())
                                                              : Eigen::MatrixXd(Eigen::MatrixXd::Zero(d, d)));
  std::ofstream marker(tmp / statistics_marker());
  marker << "format rcpu-statistics\nversion " << statistics_format_version << "\nchannels " << d << "\ntokens "
         << stats.tokens() << "\ngram " << (stats.has_gram() ? "full" : "diagonal") << "\n";
  for (const char* const* f = statistics_files(); *f != nullptr; ++f)
    if (fs::exists(tmp / *f)) marker << "crc32." << *f << " " << detail::file_crc32(dir, tmp / *f) << "\n";
  marker.flush();
  if (!marker) detail::stats_fail(dir, "cannot write the marker file");
}

/// Saves statistics to directory `dir` (layout in the file comment). The files are written into a
/// temporary sibling directory that replaces `dir` at the end (StagedOutput), so `dir` never holds a
/// partial set. An existing `dir` is replaced only if it is empty or itself a statistics directory.
/// \throws rcpu::invalid_argument if `dir` exists and is something else, or on a write error.
template <typename S, typename A>
void save_statistics(const std::string& dir, const Statistics<S, A>& stats) {
  StagedOutput out;
  stage_statistics(out, dir, stats);
  try {
    out.publish();
  } catch (const rcpu::invalid_argument& e) {
    detail::stats_fail(dir, e.message());
  }
}

/// Checks what saved statistics must satisfy whatever the data were, and returns the first broken
/// relation ("" if none). Relative tolerances cover the rounding of sums over any token count, Grams
/// summed in float (GramPrecision::input_blocks, float accumulation on a GPU) included:
///   |sum_j| <= abs_sum_j,  sum_j^2 <= n sq_sum_j,  0 <= m2_j <= sq_sum_j,
///   m2_j = sq_sum_j - sum_j^2 / n  (to 1e-3 sq_sum_j: m2 is kept because this difference cancels),
///   G_jj = sq_sum_j (to 1e-2),  |G_ij| <= sqrt(G_ii G_jj)  (Cauchy-Schwarz, to 1e-2),
///   and all zero when n = 0.
inline std::string check_statistics_relations(std::int64_t n, const Eigen::VectorXd& sum, const Eigen::VectorXd& abs_sum,
                                              const Eigen::VectorXd& sq_sum, const Eigen::VectorXd& m2,
                                              const Eigen::MatrixXd& gram) {
  std::ostringstream os;
  os.precision(17);
  const Index d = sum.size();
  const double nd = double(n), tiny = 1e-300;
  for (Index j = 0; j < d; ++j) {
    const double s = sum(j), a = abs_sum(j), q = sq_sum(j), v = m2(j);
    if (n == 0 && (s != 0 || a != 0 || q != 0 || v != 0)) {
      os << "tokens = 0 but channel " << j << " has non-zero sums (sum.npy, abs_sum.npy, sq_sum.npy, m2.npy)";
      return os.str();
    }
    if (n == 0) continue;
    if (!(std::abs(s) <= a * (1 + 1e-12) + tiny)) {
      os << "sum.npy, abs_sum.npy: |sum[" << j << "]| = " << std::abs(s) << " > abs_sum[" << j << "] = " << a
         << " (|sum x| <= sum |x|)";
      return os.str();
    }
    if (!(s * s <= nd * q * (1 + 1e-9) + tiny)) {
      os << "sum.npy, sq_sum.npy, tokens: sum[" << j << "]^2 = " << s * s << " > tokens * sq_sum[" << j
         << "] = " << nd * q << " (Cauchy-Schwarz: (sum x)^2 <= n sum x^2)";
      return os.str();
    }
    if (!(v <= q * (1 + 1e-12) + tiny) || !(std::abs(v - (q - s * s / nd)) <= 1e-3 * q + tiny)) {
      os << "m2.npy: m2[" << j << "] = " << v << " but sq_sum - sum^2 / tokens = " << q - s * s / nd
         << " (m2 = sum (x - mean)^2)";
      return os.str();
    }
  }
  if (gram.size() == 0 || n == 0) return "";
  for (Index j = 0; j < d; ++j) {
    const double g = gram(j, j), q = sq_sum(j);
    if (!(g >= 0) || !(std::abs(g - q) <= 1e-2 * q + tiny)) {
      os << "gram.npy, sq_sum.npy: G[" << j << "," << j << "] = " << g << " but sq_sum[" << j << "] = " << q
         << " (the Gram's diagonal is sum x^2)";
      return os.str();
    }
  }
  for (Index j = 0; j < d; ++j) {
    const double gj = gram(j, j);
    for (Index i = j + 1; i < d; ++i)
      // sqrt(G_ii) sqrt(G_jj): the product of two large diagonals would overflow to Inf.
      if (!(std::abs(gram(i, j)) <= std::sqrt(gram(i, i)) * std::sqrt(gj) * (1 + 1e-2) + tiny)) {
        os << "gram.npy: |G[" << i << "," << j << "]| = " << std::abs(gram(i, j)) << " > sqrt(G[" << i << "," << i
           << "] G[" << j << "," << j << "]) = " << std::sqrt(gram(i, i)) * std::sqrt(gj) << " (Cauchy-Schwarz)";
        return os.str();
      }
  }
  return "";
}

/// Loads statistics saved by save_statistics(). Everything is validated: the marker (format and
/// version), the checksum of every file (version 2), the dtypes and shapes, finiteness, and the
/// relations of check_statistics_relations().
/// \tparam S, A  the Statistics type to build (the saved float64 values are cast to A)
/// \throws rcpu::invalid_argument on any missing, malformed, corrupted or inconsistent file, naming it.
template <typename S = float, typename A = double>
Statistics<S, A> load_statistics(const std::string& dir) {
  namespace fs = std::filesystem;
  const auto kv = detail::read_statistics_marker(dir);
  const auto fmt = kv.find("format");
  if (fmt == kv.end() || fmt->second != "rcpu-statistics")
    detail::stats_fail(dir, std::string(statistics_marker()) + " does not say 'format rcpu-statistics'");
  const std::int64_t version = detail::parse_marker_int(dir, kv, "version");
  if (version != 1 && version != statistics_format_version)
    detail::stats_fail(dir, "format version " + std::to_string(version) + " is not supported (this rcpu reads 1 and " +
                                std::to_string(statistics_format_version) + ")");
  const std::int64_t d = detail::parse_marker_int(dir, kv, "channels");
  const std::int64_t n_marker = detail::parse_marker_int(dir, kv, "tokens");
  const auto gram_it = kv.find("gram");
  if (gram_it == kv.end() || (gram_it->second != "full" && gram_it->second != "diagonal"))
    detail::stats_fail(dir, std::string(statistics_marker()) + ": 'gram' must be 'full' or 'diagonal'");
  const bool full = gram_it->second == "full";
  if (d < 0) detail::stats_fail(dir, "channels = " + std::to_string(d) + " must be >= 0");
  if (n_marker < 0) detail::stats_fail(dir, "tokens = " + std::to_string(n_marker) + " must be >= 0");

  const fs::path p(dir);
  if (!full && fs::exists(p / "gram.npy"))
    detail::stats_fail(dir, std::string(statistics_marker()) + " says 'gram diagonal' but gram.npy exists");
  if (version >= 2) {
    // Every file's bytes against the marker's checksum, before anything is parsed.
    for (const char* const* f = statistics_files(); *f != nullptr; ++f) {
      const std::string name = *f;
      if (name == "gram.npy" && !full) continue;
      const auto it = kv.find("crc32." + name);
      if (it == kv.end()) detail::stats_fail(dir, std::string(statistics_marker()) + " lacks the checksum of " + name);
      if (!fs::exists(p / name)) detail::stats_fail(dir, name + " is missing");
      const std::string got = detail::file_crc32(dir, p / name);
      if (got != it->second)
        detail::stats_fail(dir, name + " is corrupted or was edited: its CRC-32 is " + got + ", " + statistics_marker() +
                                    " says " + it->second);
    }
  }
  const std::int64_t n = load_npy_int((p / "tokens.npy").string());
  if (n != n_marker)
    detail::stats_fail(dir, "tokens.npy says " + std::to_string(n) + " tokens, " + statistics_marker() + " says " +
                                std::to_string(n_marker));
  auto vec = [&](const char* name) {
    const std::string f = (p / name).string();
    NpyReader r(f);
    if (r.dims() != 1 || std::int64_t(r.header().shape[0]) != d)
      detail::stats_fail(dir, std::string(name) + " has shape " + r.header().shape_string() + ", expected (" +
                                  std::to_string(d) + ",)");
    const Eigen::MatrixXd m = r.read_all<double>();
    Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(m.data(), m.size());
    detail::require_finite_file(dir, name, v);
    return v;
  };
  const Eigen::VectorXd sum = vec("sum.npy"), abs_sum = vec("abs_sum.npy"), sq_sum = vec("sq_sum.npy"),
                        m2 = vec("m2.npy");
  Eigen::MatrixXd gram;
  if (full) {
    const std::string f = (p / "gram.npy").string();
    NpyReader r(f);
    if (r.dims() != 2 || std::int64_t(r.header().shape[0]) != d || std::int64_t(r.header().shape[1]) != d)
      detail::stats_fail(dir, "gram.npy has shape " + r.header().shape_string() + ", expected (" + std::to_string(d) +
                                  ", " + std::to_string(d) + ")");
    gram = r.read_all<double>();
    detail::require_finite_file(dir, "gram.npy", gram);  // before the symmetry check: NaN != NaN
    if (gram != gram.transpose()) {
      // A Gram written by other tools (e.g. X.T @ X through GEMM) may differ from its transpose by
      // rounding; anything more is not a Gram.
      const double asym = (gram - gram.transpose()).cwiseAbs().maxCoeff();
      if (!(asym <= 1e-12 * gram.cwiseAbs().maxCoeff())) detail::stats_fail(dir, "gram.npy is not symmetric");
      gram = Eigen::MatrixXd(0.5 * (gram + gram.transpose()));
    }
  }
  const std::string broken = check_statistics_relations(n, sum, abs_sum, sq_sum, m2, gram);
  if (!broken.empty()) detail::stats_fail(dir, "inconsistent values: " + broken);
  using Vec = typename Statistics<S, A>::Vector;
  using Mat = typename Statistics<S, A>::Matrix;
  // from_sums takes an empty Gram as "diagonal"; an empty full accumulator is rebuilt directly.
  if (full && d > 0 && n == 0) return Statistics<S, A>(Index(d), GramMode::full);
  try {
    return Statistics<S, A>::from_sums(Index(n), Vec(sum.template cast<A>()), Vec(abs_sum.template cast<A>()),
                                       Vec(sq_sum.template cast<A>()), Vec(m2.template cast<A>()),
                                       full ? Mat(gram.template cast<A>()) : Mat(),
                                       full ? GramMode::full : GramMode::diagonal);
  } catch (const rcpu::invalid_argument& e) {
    // from_sums' message names its argument; say which directory it came from.
    detail::stats_fail(dir, e.message());
  }
}

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_STATISTICS_IO_HPP
