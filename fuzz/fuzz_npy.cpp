// libFuzzer target for the .npy reader (rcpu/io/npy.hpp): the input bytes are written to a temporary
// file, which is then opened with NpyReader (header, shape, read_all as float and double, read_rows in
// blocks of a few sizes until the rows run out) and with each loader (load_npy_indices, load_npy_int,
// load_npy_matrix<double>, load_npy_vector<float>). The only exception allowed out of the library is
// rcpu::invalid_argument; a crash, a sanitizer report, any other exception, or rows read in blocks that
// differ from the whole array (abort()) is a finding.
//
// Build with clang:  fuzz/run_fuzz.sh 600 npy  (see fuzz/README.md).  The same entry point is replayed
// over fuzz/corpus/npy by fuzz/replay_main.cpp as the CTest test io_fuzz_npy_seed_corpus.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <rcpu/io/npy.hpp>

#include "temp_path.hpp"

namespace {

// Arrays whose data (in the file, or as doubles once read) exceed this are not read: keeps runs fast.
constexpr std::uint64_t max_data_bytes = 16u << 20;

// One file per process (a random name), reused by every call, removed when the process exits normally.
struct TempFile {
  std::filesystem::path path;
  TempFile() : path(rcpu_fuzz_temp_path("rcpu_fuzz_npy_", ".npy")) {}
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

const std::string& temp_path() {
  static const TempFile file;
  static const std::string path = file.path.string();
  return path;
}

template <typename T>
bool same(T a, T b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_npy: %s\n", what);
  std::abort();
}

// read_rows<float>(k) on a fresh reader until it returns no rows; the blocks must equal read_all<float>().
void read_in_blocks(const std::string& path, rcpu::Index k, const Eigen::MatrixXf* all) {
  try {
    rcpu::io::NpyReader r(path);
    const rcpu::Index rows = r.rows();
    if (rows / k > 4096) return;  // many tiny reads (e.g. a (huge, 0) array): not worth the time
    rcpu::Index next = 0;
    for (int iter = 0; iter < 4100; ++iter) {
      const Eigen::MatrixXf b = r.read_rows<float>(k);
      if (b.rows() == 0) break;
      if (all != nullptr) {
        if (b.cols() != all->cols() || next + b.rows() > all->rows()) finding("read_rows: block shape disagrees with read_all");
        for (rcpu::Index j = 0; j < b.cols(); ++j)
          for (rcpu::Index i = 0; i < b.rows(); ++i)
            if (!same(b(i, j), (*all)(next + i, j))) finding("read_rows: block values disagree with read_all");
      }
      next += b.rows();
      if (r.rows_left() != rows - next) finding("read_rows: rows_left() is wrong");
    }
    if (all != nullptr && next != all->rows()) finding("read_rows: the blocks do not add up to read_all's rows");
  } catch (const rcpu::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = temp_path();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) return 0;
  }

  bool small = false;  // header parsed and the data are within the budget
  bool two_d = false;
  Eigen::MatrixXf all_f;
  bool have_all_f = false;
  try {
    rcpu::io::NpyReader r(path);
    const rcpu::io::NpyHeader& h = r.header();
    (void)h.descr();
    (void)h.shape_string();
    (void)r.path();
    const std::uint64_t count = h.count();
    small = h.data_bytes() <= max_data_bytes && count <= max_data_bytes / 8;
    if (r.dims() == 2) {
      two_d = true;
      (void)r.rows();
      (void)r.cols();
      (void)r.rows_left();
    }
    if (small) {
      try {
        all_f = r.read_all<float>();
        have_all_f = true;
      } catch (const rcpu::invalid_argument&) {
      }
      try {
        const Eigen::MatrixXd all_d = r.read_all<double>();
        if (have_all_f && (all_d.rows() != all_f.rows() || all_d.cols() != all_f.cols()))
          finding("read_all<double> and read_all<float> disagree on the shape");
      } catch (const rcpu::invalid_argument&) {
      }
    }
  } catch (const rcpu::invalid_argument&) {
  }
  if (!small) {
    // Anything that gets this far has a header the reader refused, or more data than the budget: the
    // loaders must refuse the first kind too (cheaply), the second is not read.
    try {
      rcpu::io::NpyReader again(path);
      return 0;
    } catch (const rcpu::invalid_argument&) {
    }
  }

  if (two_d)
    for (rcpu::Index k : {1, 2, 3, 7, 64}) read_in_blocks(path, k, have_all_f ? &all_f : nullptr);
  try {
    rcpu::io::NpyReader r(path);
    (void)r.read_rows<float>(0);  // count < 1 must throw
    finding("read_rows(0) did not throw");
  } catch (const rcpu::invalid_argument&) {
  }

  try {
    const std::vector<rcpu::Index> idx = rcpu::io::load_npy_indices(path);
    (void)idx;
  } catch (const rcpu::invalid_argument&) {
  }
  try {
    (void)rcpu::io::load_npy_int(path);
  } catch (const rcpu::invalid_argument&) {
  }
  try {
    const Eigen::MatrixXd m = rcpu::io::load_npy_matrix<double>(path);
    if (have_all_f && (m.rows() != all_f.rows() || m.cols() != all_f.cols()))
      finding("load_npy_matrix and read_all disagree on the shape");
  } catch (const rcpu::invalid_argument&) {
  }
  try {
    const Eigen::VectorXf v = rcpu::io::load_npy_vector<float>(path);
    if (have_all_f) {
      if (v.size() != all_f.size()) finding("load_npy_vector and read_all disagree on the size");
      for (rcpu::Index i = 0; i < v.size(); ++i)
        if (!same(v(i), all_f.data()[i])) finding("load_npy_vector and read_all disagree on the values");
    }
  } catch (const rcpu::invalid_argument&) {
  }
  return 0;
}
