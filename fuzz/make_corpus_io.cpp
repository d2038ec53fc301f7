// Writes the seed corpora of the two I/O fuzz targets: OUT/npy (fuzz_npy.cpp: .npy files of every dtype,
// byte order, memory order, dimension count and header version rcpu reads, and broken ones) and
// OUT/statistics (fuzz_statistics.cpp: archives of statistics directories written by save_statistics,
// full Gram and diagonal, zero tokens, version 1 directories without checksums, and damaged ones).
// Files named regress_*.seed (inputs that found bugs) are left as they are.
//   build/tests/io/fuzz_io_make_corpus fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rcpu/io/npy.hpp>
#include <rcpu/io/statistics_io.hpp>

namespace fs = std::filesystem;
using rcpu::io::ByteOrder;
using rcpu::io::NpyDtype;
using rcpu::io::NpyWriteOptions;

namespace {

using Seeds = std::vector<std::pair<std::string, std::string>>;

// A .npy file with a hand-written header dictionary: version 1 (2-byte length), 2 or 3 (4-byte length).
std::string npy_raw(const std::string& dict, int version, const std::string& data) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  std::string text = dict;
  while ((prefix + text.size() + 1) % 64 != 0) text += ' ';
  text += '\n';
  std::string out = "\x93NUMPY";
  out += char(version);
  out += char(0);
  for (std::size_t i = 0; i < prefix - 8; ++i) out += char((text.size() >> (8 * i)) & 0xff);
  return out + text + data;
}

// Element bytes of `values` as `dtype` in `order`.
std::string elements(const std::vector<double>& values, NpyDtype dtype, ByteOrder order) {
  std::string out(values.size() * rcpu::io::item_size(dtype), '\0');
  rcpu::io::detail::npy_encode(values.data(), values.size(), dtype, order, &out[0]);
  return out;
}

std::string descr(NpyDtype dtype, ByteOrder order) {
  rcpu::io::NpyHeader h;
  h.dtype = dtype;
  h.byte_order = order;
  return h.descr();
}

template <typename Derived>
std::string npy_matrix(const Eigen::DenseBase<Derived>& m, NpyWriteOptions::Type type, ByteOrder order, bool fortran) {
  std::ostringstream os;
  NpyWriteOptions opt;
  opt.type = type;
  opt.byte_order = order;
  opt.fortran_order = fortran;
  rcpu::io::write_npy(os, m, opt);
  return os.str();
}

template <typename Derived>
std::string npy_vector(const Eigen::DenseBase<Derived>& v, NpyWriteOptions::Type type, ByteOrder order) {
  std::ostringstream os;
  NpyWriteOptions opt;
  opt.type = type;
  opt.byte_order = order;
  rcpu::io::write_npy_vector(os, v, opt);
  return os.str();
}

Seeds npy_seeds() {
  using T = NpyWriteOptions::Type;
  Seeds s;
  Eigen::MatrixXd m(3, 4);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) m(i, j) = 0.5 * i - 0.25 * j + (i == j ? 1e-3 : 0);
  const Eigen::VectorXd v = Eigen::VectorXd::LinSpaced(5, -2.0, 2.0);
  const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> idx = (Eigen::Matrix<std::int64_t, 4, 1>() << 0, 2, 5, 7).finished();

  // Valid: every dtype / byte order / memory order, 0-D, 1-D and 2-D.
  for (T t : {T::float32, T::float64})
    for (ByteOrder o : {ByteOrder::little, ByteOrder::big})
      for (bool f : {false, true}) {
        const std::string name = std::string(t == T::float32 ? "f4" : "f8") + "_2d_" + (f ? "fortran" : "c") + "_" +
                                 (o == ByteOrder::little ? "le" : "be");
        s.emplace_back(name, npy_matrix(m, t, o, f));
      }
  s.emplace_back("i8_2d_c_le", npy_matrix(m.cast<std::int64_t>(), T::int64, ByteOrder::little, false));
  s.emplace_back("i8_2d_fortran_be", npy_matrix((m * 4).cast<std::int64_t>(), T::int64, ByteOrder::big, true));
  s.emplace_back("f4_1d_le", npy_vector(v, T::float32, ByteOrder::little));
  s.emplace_back("f8_1d_be", npy_vector(v, T::float64, ByteOrder::big));
  s.emplace_back("f8_row_vector", npy_matrix(v.transpose(), T::float64, ByteOrder::little, false));
  s.emplace_back("f4_column_vector_fortran", npy_matrix(v, T::float32, ByteOrder::big, true));
  s.emplace_back("i8_1d_indices_le", npy_vector(idx, T::int64, ByteOrder::little));
  s.emplace_back("i8_1d_indices_be", npy_vector(idx, T::int64, ByteOrder::big));
  s.emplace_back("i8_1d_one", npy_vector(idx.head(1), T::int64, ByteOrder::little));
  const auto dict = [](NpyDtype t, ByteOrder o, bool f, const std::string& shape) {
    return "{'descr': '" + descr(t, o) + "', 'fortran_order': " + (f ? "True" : "False") + ", 'shape': " + shape + ", }";
  };
  s.emplace_back("i8_0d_le", npy_raw(dict(NpyDtype::int64, ByteOrder::little, false, "()"), 1,
                                     elements({42}, NpyDtype::int64, ByteOrder::little)));
  s.emplace_back("i4_0d_be", npy_raw(dict(NpyDtype::int32, ByteOrder::big, false, "()"), 1,
                                     elements({-7}, NpyDtype::int32, ByteOrder::big)));
  s.emplace_back("i4_1d_le", npy_raw(dict(NpyDtype::int32, ByteOrder::little, false, "(4,)"), 1,
                                     elements({3, 1, 4, 1}, NpyDtype::int32, ByteOrder::little)));
  s.emplace_back("i4_2d_fortran_be", npy_raw(dict(NpyDtype::int32, ByteOrder::big, true, "(2, 3)"), 1,
                                             elements({1, 2, 3, 4, 5, 6}, NpyDtype::int32, ByteOrder::big)));
  s.emplace_back("f8_0d_le", npy_raw(dict(NpyDtype::float64, ByteOrder::little, false, "()"), 1,
                                     elements({3.25}, NpyDtype::float64, ByteOrder::little)));
  s.emplace_back("f4_0d_be", npy_raw(dict(NpyDtype::float32, ByteOrder::big, false, "()"), 1,
                                     elements({-1.5}, NpyDtype::float32, ByteOrder::big)));
  s.emplace_back("f8_3d", npy_raw(dict(NpyDtype::float64, ByteOrder::little, false, "(2, 1, 2)"), 1,
                                  elements({1, 2, 3, 4}, NpyDtype::float64, ByteOrder::little)));
  s.emplace_back("f4_empty_0x3", npy_raw(dict(NpyDtype::float32, ByteOrder::little, false, "(0, 3)"), 1, ""));
  s.emplace_back("f8_empty_3x0_fortran", npy_raw(dict(NpyDtype::float64, ByteOrder::big, true, "(3, 0)"), 1, ""));
  s.emplace_back("i8_empty_1d", npy_raw(dict(NpyDtype::int64, ByteOrder::little, false, "(0,)"), 1, ""));
  s.emplace_back("f8_nonfinite", npy_vector(Eigen::Vector3d(std::numeric_limits<double>::quiet_NaN(),
                                                            std::numeric_limits<double>::infinity(), 1e300),
                                            T::float64, ByteOrder::little));
  // Header versions 2.0 and 3.0 (4-byte length), NumPy 1.x spellings.
  s.emplace_back("f4_2d_v2", npy_raw(dict(NpyDtype::float32, ByteOrder::little, false, "(2, 2)"), 2,
                                     elements({1, 2, 3, 4}, NpyDtype::float32, ByteOrder::little)));
  s.emplace_back("f8_1d_v3_be", npy_raw(dict(NpyDtype::float64, ByteOrder::big, false, "(3,)"), 3,
                                        elements({1, -2, 3}, NpyDtype::float64, ByteOrder::big)));
  s.emplace_back("f8_native_longs", npy_raw("{\"descr\": \"=f8\", \"shape\": (2L, 1L), \"fortran_order\": False}", 1,
                                            elements({5, 6}, NpyDtype::float64, rcpu::io::native_byte_order())));

  // Broken.
  const std::string good = s.front().second;
  s.emplace_back("bad_truncated_data", good.substr(0, good.size() - 5));
  s.emplace_back("bad_truncated_header", good.substr(0, 40));
  s.emplace_back("bad_too_short", good.substr(0, 9));
  s.emplace_back("bad_trailing_bytes", good + "xyz");
  std::string magic = good;
  magic[1] = 'M';
  s.emplace_back("bad_magic", magic);
  std::string version = good;
  version[6] = 4;
  s.emplace_back("bad_version4", version);
  std::string hlen = good;
  hlen[8] = char(0xff);
  hlen[9] = char(0x7f);
  s.emplace_back("bad_header_length", hlen);
  std::string nl = good;
  nl[good.find('\n')] = ' ';
  s.emplace_back("bad_no_newline", nl);
  s.emplace_back("bad_dtype_f2", npy_raw("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 1, "abcd"));
  s.emplace_back("bad_dtype_struct", npy_raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 1, "abcd"));
  s.emplace_back("bad_repeated_key", npy_raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 1, "abcd"));
  s.emplace_back("bad_unknown_key", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 1, "abcd"));
  s.emplace_back("bad_missing_shape", npy_raw("{'descr': '<f4', 'fortran_order': False}", 1, "abcd"));
  s.emplace_back("bad_order_value", npy_raw("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", 1, "abcd"));
  s.emplace_back("bad_negative_dim", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 1, "abcd"));
  s.emplace_back("bad_dim_overflow", npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 1, ""));
  s.emplace_back("bad_dim_64bit", npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551616,), }", 1, ""));
  s.emplace_back("huge_dim_zero_rows", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904), }", 1, ""));
  s.emplace_back("huge_dim_zero_cols", npy_raw("{'descr': '<f8', 'fortran_order': True, 'shape': (9223372036854775807, 0), }", 1, ""));
  s.emplace_back("bad_unterminated", npy_raw("{'descr': \"<f4', 'fortran_order': False, 'shape': (1,), }", 1, "abcd"));
  // The header with a NUL after it: the literal's own bytes, its embedded NUL included (not the terminator).
  static const char nul_header[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\0";
  s.emplace_back("bad_nul_in_header", npy_raw(std::string(nul_header, sizeof nul_header - 1), 1, "abcd"));
  return s;
}

// ---- statistics directories ----------------------------------------------------------------------

const char* const archive_files[7] = {"rcpu_statistics.txt", "tokens.npy", "sum.npy", "abs_sum.npy",
                                      "sq_sum.npy", "m2.npy", "gram.npy"};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// The files of a directory, by archive index (absent files are empty strings and not packed).
using Files = std::vector<std::string>;

Files read_dir(const fs::path& dir) {
  Files f(7);
  for (int i = 0; i < 7; ++i)
    if (fs::exists(dir / archive_files[i])) f[std::size_t(i)] = read_bytes(dir / archive_files[i]);
  return f;
}

void record(std::string& out, int index, const std::string& bytes) {
  out += char(index);
  for (int i = 0; i < 4; ++i) out += char((bytes.size() >> (8 * i)) & 0xff);
  out += bytes;
}

std::string pack(const Files& f) {
  std::string out;
  for (int i = 0; i < 7; ++i)
    if (!f[std::size_t(i)].empty()) record(out, i, f[std::size_t(i)]);
  return out;
}

// The marker rewritten as version 1 (no checksums), so that mutations of the .npy files reach the parser.
std::string marker_v1(const std::string& marker) {
  std::istringstream in(marker);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("crc32.", 0) == 0) continue;
    out += (line.rfind("version ", 0) == 0 ? std::string("version 1") : line) + "\n";
  }
  return out;
}

Eigen::MatrixXf activations(std::uint32_t seed, Eigen::Index n, Eigen::Index d) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Eigen::MatrixXf X(n, d);
  for (Eigen::Index j = 0; j < d; ++j)
    for (Eigen::Index i = 0; i < n; ++i) X(i, j) = normal(rng) + 0.5f * float(j);
  return X;
}

Files saved(const fs::path& tmp, const std::string& name, const rcpu::Statistics<float>& st) {
  const fs::path dir = tmp / name;
  rcpu::io::save_statistics(dir.string(), st);
  return read_dir(dir);
}

Seeds statistics_seeds(const fs::path& tmp) {
  Seeds s;
  rcpu::Statistics<float> full(4, rcpu::GramMode::full), diag(3, rcpu::GramMode::diagonal);
  full.update(activations(1, 6, 4));
  diag.update(activations(2, 5, 3));
  const Files f = saved(tmp, "full", full), d = saved(tmp, "diag", diag);
  const Files f0 = saved(tmp, "full0", rcpu::Statistics<float>(3, rcpu::GramMode::full));
  const Files d0 = saved(tmp, "diag0", rcpu::Statistics<float>(2, rcpu::GramMode::diagonal));
  const Files c0 = saved(tmp, "channels0", rcpu::Statistics<float>(0, rcpu::GramMode::full));
  const Files c0d = saved(tmp, "channels0d", rcpu::Statistics<float>(0, rcpu::GramMode::diagonal));
  rcpu::Statistics<float> one(2, rcpu::GramMode::full);
  one.update(activations(3, 1, 2));
  const Files o = saved(tmp, "one", one);

  s.emplace_back("full_d4", pack(f));
  s.emplace_back("diagonal_d3", pack(d));
  s.emplace_back("zero_tokens_full_d3", pack(f0));
  s.emplace_back("zero_tokens_diagonal_d2", pack(d0));
  s.emplace_back("zero_channels", pack(c0));
  s.emplace_back("zero_channels_diagonal", pack(c0d));
  s.emplace_back("one_token_d2", pack(o));
  for (const auto& named : {std::make_pair("full_d4_v1", f), std::make_pair("diagonal_d3_v1", d),
                            std::make_pair("zero_tokens_full_d3_v1", f0)}) {
    Files v1 = named.second;
    v1[0] = marker_v1(v1[0]);
    s.emplace_back(named.first, pack(v1));
  }

  // Damaged (each should be refused with a message naming the problem).
  Files crc = f;
  crc[2][crc[2].size() - 3] ^= 0x10;  // a bit of sum.npy's data: the checksum no longer matches
  s.emplace_back("bad_checksum", pack(crc));
  Files missing = f;
  missing[5].clear();  // no m2.npy
  s.emplace_back("bad_missing_m2", pack(missing));
  Files v1 = f;
  v1[0] = marker_v1(f[0]);
  Files tokens = v1;
  tokens[1] = rcpu::io::detail::npy_header_bytes(NpyDtype::int64, ByteOrder::little, false, {}) +
              elements({7}, NpyDtype::int64, ByteOrder::little);
  s.emplace_back("bad_tokens_mismatch_v1", pack(tokens));
  Files sums = v1;
  sums[2] = npy_vector(Eigen::Vector4d(100, 0, 0, 0), NpyWriteOptions::Type::float64, ByteOrder::little);
  s.emplace_back("bad_sum_exceeds_abs_sum_v1", pack(sums));
  Files m2 = v1;
  m2[5] = npy_vector(Eigen::Vector4d(-1, 0, 0, 0), NpyWriteOptions::Type::float64, ByteOrder::little);
  s.emplace_back("bad_negative_m2_v1", pack(m2));
  Files asym = v1;
  {
    Eigen::Matrix4d g = full.gram();
    g(0, 1) += 1;
    asym[6] = npy_matrix(g, NpyWriteOptions::Type::float64, ByteOrder::little, false);
  }
  s.emplace_back("bad_gram_asymmetric_v1", pack(asym));
  Files nan = v1;
  {
    Eigen::Matrix4d g = full.gram();
    g(2, 2) = std::numeric_limits<double>::quiet_NaN();
    nan[6] = npy_matrix(g, NpyWriteOptions::Type::float64, ByteOrder::big, true);
  }
  s.emplace_back("bad_gram_nan_v1", pack(nan));
  Files shape = v1;
  shape[6] = npy_matrix(Eigen::Matrix3d(Eigen::Matrix3d::Identity()), NpyWriteOptions::Type::float64, ByteOrder::little, false);
  s.emplace_back("bad_gram_shape_v1", pack(shape));
  Files f32 = v1;
  f32[3] = npy_vector(full.abs_sum(), NpyWriteOptions::Type::float32, ByteOrder::little);  // float32 on disk: read as double
  s.emplace_back("abs_sum_float32_v1", pack(f32));
  Files extra = d;
  extra[0] = marker_v1(d[0]);
  extra[6] = f[6];  // gram.npy next to "gram diagonal"
  s.emplace_back("bad_diagonal_with_gram_v1", pack(extra));
  Files trunc = v1;
  trunc[6].resize(trunc[6].size() - 8);
  s.emplace_back("bad_truncated_gram_v1", pack(trunc));
  Files version = f;
  version[0] = "format rcpu-statistics\nversion 3\nchannels 4\ntokens 6\ngram full\n";
  s.emplace_back("bad_version3", pack(version));
  Files marker = f;
  marker[0] = "format rcpu-statistics\nversion two\nchannels -4\n";
  s.emplace_back("bad_marker", pack(marker));
  std::string cut = pack(f);
  cut.resize(cut.size() / 2);
  s.emplace_back("bad_archive_cut", cut);
  return s;
}

bool write_seeds(const fs::path& dir, const Seeds& seeds) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (const auto& s : seeds) {
    if (s.second.size() >= 65536) {
      std::cerr << s.first << ": seed too large (" << s.second.size() << " bytes)\n";
      return false;
    }
    std::ofstream out(dir / (s.first + ".seed"), std::ios::binary | std::ios::trunc);
    out.write(s.second.data(), static_cast<std::streamsize>(s.second.size()));
    if (!out) {
      std::cerr << "cannot write " << (dir / (s.first + ".seed")).string() << "\n";
      return false;
    }
  }
  std::cout << "wrote " << seeds.size() << " seeds to " << dir.string() << "\n";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_io_make_corpus OUT_DIR   (writes OUT_DIR/npy and OUT_DIR/statistics)\n";
    return 2;
  }
  const fs::path out = argv[1];
  std::random_device rd;
  const fs::path tmp = fs::temp_directory_path() / ("rcpu_make_corpus_io_" + std::to_string(rd()));
  int rc = 0;
  try {
    fs::create_directories(tmp);
    if (!write_seeds(out / "npy", npy_seeds()) || !write_seeds(out / "statistics", statistics_seeds(tmp))) rc = 1;
  } catch (const std::exception& e) {
    std::cerr << "fuzz_io_make_corpus: " << e.what() << "\n";
    rc = 1;
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return rc;
}
