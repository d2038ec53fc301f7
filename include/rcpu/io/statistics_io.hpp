// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_STATISTICS_IO_HPP
#define RCPU_IO_STATISTICS_IO_HPP

/// \file statistics_io.hpp
/// Saves and loads rcpu::Statistics as a directory of .npy files, so that statistics accumulated in
/// separate runs (token shards, machines, a Python pipeline) can be stored and merged exactly later.
///
/// Layout of a statistics directory (format version 1):
///
///     rcpu_statistics.txt   "key value" lines: format rcpu-statistics, version 1, channels d,
///                           tokens n, gram full|diagonal (the marker that identifies the directory)
///     tokens.npy            int64, shape ()       n
///     sum.npy               float64, shape (d,)   sum_t x_t
///     abs_sum.npy           float64, shape (d,)   sum_t |x_t|
///     sq_sum.npy            float64, shape (d,)   sum_t x_t^2
///     m2.npy                float64, shape (d,)   sum_t (x_t - mean)^2 (kept for a stable variance)
///     gram.npy              float64, shape (d, d) sum_t x_t x_t^T (only with "gram full")
///
/// Values are the accumulator's own (AccScalar, saved as float64), so the sums, m2 and the Gram load
/// back exactly; the mean is rebuilt as sum / n by Statistics::from_sums (the accumulator's running
/// mean can differ from it in the last bit). Statistics::merge of loaded shards gives what one pass
/// over all their tokens gives, up to the order of floating-point additions. In NumPy: `n = int(np.load("dir/tokens.npy"))`,
/// `G = np.load("dir/gram.npy")`, mean = sum / n, variance = m2 / n.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "../statistics.hpp"
#include "npy.hpp"

namespace rcpu {
namespace io {

/// Name of the marker file that identifies a statistics directory.
inline const char* statistics_marker() { return "rcpu_statistics.txt"; }

/// Format version written by save_statistics() and the only one load_statistics() reads.
constexpr int statistics_format_version = 1;

namespace detail {

[[noreturn]] inline void stats_fail(const std::string& dir, const std::string& message) {
  throw invalid_argument("statistics: " + dir + ": " + message);
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

/// Saves statistics to directory `dir` (layout in the file comment). The files are written into a
/// temporary sibling directory that is renamed into place at the end, so `dir` never holds a partial
/// set. An existing `dir` is replaced only if it is empty or itself a statistics directory.
/// \throws rcpu::invalid_argument if `dir` exists and is something else, or on a write error.
template <typename S, typename A>
void save_statistics(const std::string& dir, const Statistics<S, A>& stats) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string name = dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();  // "out/" names "out", not a child of it
  if (name.empty() || name == "/" || name == "." || name == "..")
    detail::stats_fail(dir, "is not a usable output directory name");
  const fs::path target(name);
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec)) detail::stats_fail(dir, "exists and is not a directory; refusing to replace it");
    if (!is_statistics_directory(name) && !fs::is_empty(target, ec))
      detail::stats_fail(dir, "exists and is not a statistics directory; refusing to replace it");
  }
  const fs::path tmp = fs::path(name + ".rcpu-part");
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) || ec) detail::stats_fail(dir, "cannot create '" + tmp.string() + "'");
  try {
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
    marker.flush();
    if (!marker) detail::stats_fail(dir, "cannot write the marker file");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  // Swap in: move the old directory aside, move the new one in, then delete the old one.
  const fs::path old = fs::path(name + ".rcpu-old");
  fs::remove_all(old, ec);
  const bool had_old = fs::exists(target, ec);
  if (had_old) {
    fs::rename(target, old, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      detail::stats_fail(dir, "cannot move the existing directory aside");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string why = ec.message();
    if (had_old) fs::rename(old, target, ec);
    fs::remove_all(tmp, ec);
    detail::stats_fail(dir, "cannot rename the new directory into place: " + why);
  }
  if (had_old) fs::remove_all(old, ec);
}

/// Loads statistics saved by save_statistics(). Everything is validated: the marker (format and
/// version), the dtypes and shapes of every file, and the values (through Statistics::from_sums).
/// \tparam S, A  the Statistics type to build (the saved float64 values are cast to A)
/// \throws rcpu::invalid_argument on any missing, malformed or inconsistent file.
template <typename S = float, typename A = double>
Statistics<S, A> load_statistics(const std::string& dir) {
  namespace fs = std::filesystem;
  const auto kv = detail::read_statistics_marker(dir);
  const auto fmt = kv.find("format");
  if (fmt == kv.end() || fmt->second != "rcpu-statistics")
    detail::stats_fail(dir, std::string(statistics_marker()) + " does not say 'format rcpu-statistics'");
  const std::int64_t version = detail::parse_marker_int(dir, kv, "version");
  if (version != statistics_format_version)
    detail::stats_fail(dir, "format version " + std::to_string(version) + " is not supported (this rcpu reads " +
                                std::to_string(statistics_format_version) + ")");
  const std::int64_t d = detail::parse_marker_int(dir, kv, "channels");
  const std::int64_t n_marker = detail::parse_marker_int(dir, kv, "tokens");
  const auto gram_it = kv.find("gram");
  if (gram_it == kv.end() || (gram_it->second != "full" && gram_it->second != "diagonal"))
    detail::stats_fail(dir, std::string(statistics_marker()) + ": 'gram' must be 'full' or 'diagonal'");
  const bool full = gram_it->second == "full";
  if (d < 0) detail::stats_fail(dir, "channels = " + std::to_string(d) + " must be >= 0");

  const fs::path p(dir);
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
    return Eigen::VectorXd(Eigen::Map<const Eigen::VectorXd>(m.data(), m.size()));
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
    if (gram != gram.transpose()) {
      // A Gram written by other tools (e.g. X.T @ X through GEMM) may differ from its transpose by
      // rounding; anything more is not a Gram.
      const double asym = (gram - gram.transpose()).cwiseAbs().maxCoeff();
      if (!(asym <= 1e-12 * gram.cwiseAbs().maxCoeff())) detail::stats_fail(dir, "gram.npy is not symmetric");
      gram = Eigen::MatrixXd(0.5 * (gram + gram.transpose()));
    }
  } else if (fs::exists(p / "gram.npy")) {
    detail::stats_fail(dir, std::string(statistics_marker()) + " says 'gram diagonal' but gram.npy exists");
  }
  using Vec = typename Statistics<S, A>::Vector;
  using Mat = typename Statistics<S, A>::Matrix;
  try {
    if (full && d > 0 && n == 0) {
      // from_sums takes an empty Gram as "diagonal"; an empty full accumulator is rebuilt directly.
      if (!gram.isZero(0) || !sum.isZero(0)) detail::stats_fail(dir, "tokens = 0 with non-zero sums");
      return Statistics<S, A>(Index(d), GramMode::full);
    }
    return Statistics<S, A>::from_sums(Index(n), Vec(sum.template cast<A>()), Vec(abs_sum.template cast<A>()),
                                       Vec(sq_sum.template cast<A>()), Vec(m2.template cast<A>()),
                                       full ? Mat(gram.template cast<A>()) : Mat());
  } catch (const rcpu::invalid_argument& e) {
    // from_sums' message names its argument; say which directory it came from.
    const std::string what = e.what();
    detail::stats_fail(dir, what.rfind("rcpu: ", 0) == 0 ? what.substr(6) : what);
  }
}

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_STATISTICS_IO_HPP
