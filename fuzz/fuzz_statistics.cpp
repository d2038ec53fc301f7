// libFuzzer target for the statistics directory loader (rcpu/io/statistics_io.hpp, and through it
// rcpu/io/npy.hpp, rcpu/io/staged_output.hpp and rcpu/statistics.hpp).
//
// Input format: a tiny archive of a statistics directory, a sequence of records
//
//     [1 byte  file index]  index % 7 selects the file: 0 rcpu_statistics.txt, 1 tokens.npy, 2 sum.npy,
//                           3 abs_sum.npy, 4 sq_sum.npy, 5 m2.npy, 6 gram.npy
//     [4 bytes length]      little-endian uint32
//     [length bytes]        the file's contents (fewer if the input ends first)
//
// A later record for the same file replaces the earlier one; a record longer than 1 MiB is skipped;
// trailing bytes too few for a record header are ignored. fuzz/make_corpus_io.cpp writes such archives
// of real directories (save_statistics) into fuzz/corpus/statistics.
//
// Each call writes the records into a fresh temporary directory and calls load_statistics<float> and
// load_statistics<double> on it. When a load succeeds it reads the statistics (gram() when there is one
// and tokens, variance(), mean(), covariance()), saves them with save_statistics into another temporary
// directory and loads that back, which must succeed and give identical values (else abort()). The only
// exception allowed out of the library is rcpu::invalid_argument; a crash, a sanitizer report or any
// other exception is a finding.
//
// Build with clang:  fuzz/run_fuzz.sh 600 statistics  (see fuzz/README.md). The same entry point is
// replayed over the seed corpus by fuzz/replay_main.cpp as the CTest test io_fuzz_statistics_seed_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <rcpu/io/statistics_io.hpp>

#include "temp_path.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t max_record = 1u << 20;

const char* const archive_files[7] = {"rcpu_statistics.txt", "tokens.npy", "sum.npy", "abs_sum.npy",
                                      "sq_sum.npy", "m2.npy", "gram.npy"};

// One working directory per process (a random name) holding in/ and out/, removed at a normal exit.
struct TempDir {
  fs::path root;
  TempDir() : root(rcpu_fuzz_temp_path("rcpu_fuzz_statistics_")) {}
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

const fs::path& temp_root() {
  static const TempDir dir;
  return dir.root;
}

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_statistics: %s\n", what.c_str());
  std::abort();
}

template <typename S>
void exercise(const std::string& in, const std::string& out) {
  rcpu::Statistics<S> s;
  try {
    s = rcpu::io::load_statistics<S>(in);
  } catch (const rcpu::invalid_argument&) {
    return;
  }
  if (s.has_gram() && s.tokens() > 0) (void)s.gram();
  try {
    (void)s.variance();
    (void)s.mean();
    if (s.has_gram()) (void)s.covariance();
  } catch (const rcpu::invalid_argument&) {
    if (s.tokens() > 0) finding("the statistics of a loaded directory with tokens cannot be read");
  }

  std::error_code ec;
  fs::remove_all(out, ec);
  try {
    rcpu::io::save_statistics(out, s);
  } catch (const rcpu::invalid_argument& e) {
    finding(std::string("save_statistics failed on loaded statistics: ") + e.what());
  }
  rcpu::Statistics<S> t;
  try {
    t = rcpu::io::load_statistics<S>(out);
  } catch (const rcpu::invalid_argument& e) {
    finding(std::string("statistics saved by save_statistics do not load back: ") + e.what());
  }
  if (t.channels() != s.channels() || t.tokens() != s.tokens() || t.has_gram() != s.has_gram())
    finding("the statistics loaded back differ in channels, tokens or Gram mode");
  if (t.sum() != s.sum() || t.abs_sum() != s.abs_sum() || t.sq_sum() != s.sq_sum() || t.m2() != s.m2())
    finding("the sums loaded back differ from the saved ones");
  if (s.has_gram() && s.tokens() > 0 && t.gram() != s.gram()) finding("the Gram loaded back differs from the saved one");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path& root = temp_root();
  const fs::path in = root / "in", out = root / "out";
  std::error_code ec;
  fs::remove_all(in, ec);
  fs::create_directories(in, ec);
  if (ec) return 0;

  std::size_t pos = 0;
  while (size - pos >= 5) {
    const unsigned index = data[pos] % 7u;
    const std::uint32_t len = std::uint32_t(data[pos + 1]) | std::uint32_t(data[pos + 2]) << 8 |
                              std::uint32_t(data[pos + 3]) << 16 | std::uint32_t(data[pos + 4]) << 24;
    pos += 5;
    const std::size_t n = len < size - pos ? std::size_t(len) : size - pos;
    if (len <= max_record) {
      std::ofstream f(in / archive_files[index], std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(data + pos), static_cast<std::streamsize>(n));
      if (!f) return 0;
    }
    pos += n;
  }

  exercise<float>(in.string(), out.string());
  exercise<double>(in.string(), out.string());
  return 0;
}
