// Oracles for rcpu/io/npy.hpp: files written by NumPy (bytes captured from np.save) read back to the
// right values, rcpu's writer produces NumPy's exact bytes, every combination of byte order, memory
// order and dtype round-trips, streaming equals reading at once, and every malformed file is refused
// with rcpu::invalid_argument before anything past its end is read.
#include <rcpu/io/npy.hpp>

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "io_support.hpp"
#include "support.hpp"

using rcpu_test::read_bytes;
using rcpu_test::Rng;
using rcpu_test::TempDir;
using rcpu_test::write_bytes;

namespace {

// A .npy file as NumPy wrote it: the header dictionary, its padding of spaces, and the data bytes.
struct Fixture {
  std::string dict;
  int pad;
  std::vector<unsigned char> data;

  std::string bytes() const {
    const std::size_t len = dict.size() + std::size_t(pad) + 1;
    std::string s = "\x93NUMPY";
    s += char(1);
    s += char(0);
    s += char(len & 0xff);
    s += char(len >> 8);
    s += dict + std::string(std::size_t(pad), ' ') + "\n";
    s.append(data.begin(), data.end());
    return s;
  }
};

// Captured from NumPy 1.24 (np.save to a BytesIO), see each comment.
// np.arange(6, dtype='<f4').reshape(2, 3) * 0.5 - 1
const Fixture np_c_f4{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 58,
                      {0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0xbf, 0x00, 0x00, 0x00, 0x00,
                       0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f}};
// np.asfortranarray(np.arange(6.).reshape(2, 3) * 0.25 + 3).astype('>f8', order='F')
const Fixture np_f_f8be{"{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", 59,
                        {0x40, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                         0x40, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                         0x40, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}};
// np.array([4, -1, 7], dtype='<i8')
const Fixture np_i8{"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60,
                    {0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                     0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}};
// np.array(2.5)
const Fixture np_0d{"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 62,
                    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x40}};
// np.array([1.5, -2], dtype='>f4')
const Fixture np_vec_f4be{"{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 60,
                          {0x3f, 0xc0, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00}};

// A .npy file with an arbitrary header dictionary (version 1.0) and data.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string h = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string s = "\x93NUMPY";
  s += char(major);
  s += char(0);
  const std::size_t len = h.size();
  for (std::size_t i = 0; i < prefix - 8; ++i) s += char((len >> (8 * i)) & 0xff);
  return s + h + data;
}

std::string zeros(std::size_t n) { return std::string(n, '\0'); }

// Whether loading `path` as a float matrix throws rcpu::invalid_argument mentioning `phrase`.
template <typename Fn>
bool refuses(Fn fn, const std::string& phrase) {
  try {
    fn();
  } catch (const rcpu::invalid_argument& e) {
    const std::string what = e.what();
    INFO("message: " << what);
    CHECK(what.find(phrase) != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("files written by NumPy read back to NumPy's values", "[npy]") {
  TempDir dir("npy");
  write_bytes(dir / "c.npy", np_c_f4.bytes());
  write_bytes(dir / "f.npy", np_f_f8be.bytes());
  write_bytes(dir / "i.npy", np_i8.bytes());
  write_bytes(dir / "s.npy", np_0d.bytes());
  write_bytes(dir / "v.npy", np_vec_f4be.bytes());

  Eigen::MatrixXd c_expect(2, 3), f_expect(2, 3);
  c_expect << -1.0, -0.5, 0.0, 0.5, 1.0, 1.5;
  f_expect << 3.0, 3.25, 3.5, 3.75, 4.0, 4.25;
  CHECK(rcpu::io::load_npy_matrix<double>(dir / "c.npy") == c_expect);
  CHECK(rcpu::io::load_npy_matrix<float>(dir / "c.npy") == c_expect.cast<float>());
  CHECK(rcpu::io::load_npy_matrix<double>(dir / "f.npy") == f_expect);
  CHECK(rcpu::io::load_npy_indices(dir / "i.npy") == std::vector<rcpu::Index>{4, -1, 7});
  CHECK(rcpu::io::load_npy_vector<double>(dir / "v.npy") == Eigen::Vector2d(1.5, -2.0));

  rcpu::io::NpyReader s(dir / "s.npy");
  CHECK(s.dims() == 0);
  CHECK(s.read_all<double>()(0, 0) == 2.5);

  rcpu::io::NpyReader f(dir / "f.npy");
  CHECK(f.header().byte_order == rcpu::io::ByteOrder::big);
  CHECK(f.header().fortran_order);
  CHECK(f.header().dtype == rcpu::io::NpyDtype::float64);
  CHECK(f.header().shape_string() == "(2, 3)");
  CHECK(f.header().data_offset == 128);
}

TEST_CASE("the writer produces NumPy's exact bytes", "[npy]") {
  Eigen::MatrixXf c(2, 3);
  c << -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f;
  std::ostringstream a;
  rcpu::io::write_npy(a, c);
  CHECK(a.str() == np_c_f4.bytes());

  Eigen::MatrixXd f(2, 3);
  f << 3.0, 3.25, 3.5, 3.75, 4.0, 4.25;
  rcpu::io::NpyWriteOptions o;
  o.byte_order = rcpu::io::ByteOrder::big;
  o.fortran_order = true;
  std::ostringstream b;
  rcpu::io::write_npy(b, f, o);
  CHECK(b.str() == np_f_f8be.bytes());

  std::ostringstream i;
  rcpu::io::write_npy_vector(i, Eigen::Matrix<std::int64_t, 3, 1>(4, -1, 7));
  CHECK(i.str() == np_i8.bytes());

  std::ostringstream v;
  rcpu::io::write_npy_vector(v, Eigen::Vector2f(1.5f, -2.0f), o);  // fortran_order is moot for 1-D
  CHECK(v.str() == np_vec_f4be.bytes());
}

TEMPLATE_TEST_CASE("every byte order, memory order and dtype round-trips", "[npy]", float, double) {
  TempDir dir("npy");
  Rng rng(11);
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  using Type = rcpu::io::NpyWriteOptions::Type;
  for (auto shape : {std::pair<int, int>{5, 7}, {1, 6}, {6, 1}, {0, 4}, {3, 0}}) {
    const Mat A = rng.normal<TestType>(shape.first, shape.second);
    for (auto order : {rcpu::io::ByteOrder::little, rcpu::io::ByteOrder::big})
      for (bool fortran : {false, true})
        for (Type t : {Type::automatic, Type::float32, Type::float64}) {
          rcpu::io::NpyWriteOptions o;
          o.byte_order = order;
          o.fortran_order = fortran;
          o.type = t;
          const std::string p = dir / "a.npy";
          rcpu::io::save_npy(p, A, o);
          const Mat B = rcpu::io::load_npy_matrix<TestType>(p);
          REQUIRE(B.rows() == A.rows());
          REQUIRE(B.cols() == A.cols());
          // Exact unless a double was written as float32.
          const Mat expect = (t == Type::float32) ? Mat(A.template cast<float>().template cast<TestType>()) : A;
          CHECK(B == expect);
          CHECK(rcpu_test::list_dir(dir.str()) == std::vector<std::string>{"a.npy"});  // no temporary left
        }
  }
}

TEST_CASE("vectors, indices and single integers round-trip", "[npy]") {
  TempDir dir("npy");
  const Eigen::VectorXd v = Rng(12).normal(9, 1);
  rcpu::io::save_npy_vector(dir / "v.npy", v);
  CHECK(rcpu::io::load_npy_vector<double>(dir / "v.npy") == v);
  rcpu::io::save_npy(dir / "row.npy", Eigen::MatrixXd(v.transpose()));  // (1, n) is accepted as a vector
  CHECK(rcpu::io::load_npy_vector<double>(dir / "row.npy") == v);
  const std::vector<rcpu::Index> idx = {0, 5, 3, 1000000000000};
  rcpu::io::save_npy_indices(dir / "i.npy", idx);
  CHECK(rcpu::io::load_npy_indices(dir / "i.npy") == idx);
  rcpu::io::save_npy_int(dir / "n.npy", -123456789012345);
  CHECK(rcpu::io::load_npy_int(dir / "n.npy") == -123456789012345);
  write_bytes(dir / "i4.npy", make_npy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                                       std::string("\x00\x00\x00\x05\xff\xff\xff\xfe", 8)));
  CHECK(rcpu::io::load_npy_indices(dir / "i4.npy") == std::vector<rcpu::Index>{5, -2});
}

TEST_CASE("streaming rows equals reading the whole array, in either memory order", "[npy]") {
  TempDir dir("npy");
  const Eigen::MatrixXd A = Rng(13).normal(23, 5);
  for (bool fortran : {false, true}) {
    rcpu::io::NpyWriteOptions o;
    o.fortran_order = fortran;
    o.byte_order = fortran ? rcpu::io::ByteOrder::big : rcpu::io::ByteOrder::little;
    rcpu::io::save_npy(dir / "a.npy", A, o);
    for (rcpu::Index chunk : {1, 4, 7, 23, 100}) {
      rcpu::io::NpyReader r(dir / "a.npy");
      Eigen::MatrixXd B(0, 5);
      for (;;) {
        const Eigen::MatrixXd part = r.read_rows<double>(chunk);
        if (part.rows() == 0) break;
        CHECK(part.rows() <= chunk);
        B.conservativeResize(B.rows() + part.rows(), Eigen::NoChange);
        B.bottomRows(part.rows()) = part;
      }
      CHECK(r.rows_left() == 0);
      CHECK(B == A);
    }
  }
}

TEST_CASE("a version 2.0 header is read", "[npy]") {
  TempDir dir("npy");
  std::string data(16, '\0');
  const double vals[2] = {1.25, -7.0};
  std::memcpy(&data[0], vals, 16);  // little-endian machines only write '<f8' natively
  if (rcpu::io::native_byte_order() == rcpu::io::ByteOrder::little) {
    write_bytes(dir / "v2.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", data, 2));
    CHECK(rcpu::io::load_npy_vector<double>(dir / "v2.npy") == Eigen::Vector2d(1.25, -7.0));
  }
}

TEST_CASE("malformed, truncated and unsupported files are refused", "[npy]") {
  TempDir dir("npy");
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::string data24 = zeros(24);
  struct Case {
    std::string name, bytes, phrase;
  };
  const std::string good = make_npy(ok_dict, data24);
  std::string bad_version = good;
  bad_version[6] = char(4);
  std::string long_header = good;
  long_header[8] = char(0xff);  // header length beyond the end of the file
  long_header[9] = char(0x7f);
  std::string no_newline = good;
  no_newline[good.size() - 24 - 1] = ' ';
  std::string nul_in_header = good;
  nul_in_header[30] = '\0';
  const std::vector<Case> cases = {
      {"empty", "", "too short"},
      {"short", "\x93NUM", "too short"},
      {"magic", "\x93NUMPX" + good.substr(6), "bad magic"},
      {"version", bad_version, "version 4"},
      {"header length", long_header, "truncated"},
      {"no newline", no_newline, "newline"},
      {"nul", nul_in_header, "NUL"},
      {"truncated data", good.substr(0, good.size() - 1), "truncated"},
      {"trailing bytes", good + "x", "unexpected bytes"},
      {"float16", make_npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", zeros(12)), "'<f2'"},
      {"uint8", make_npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", zeros(6)), "'|u1'"},
      {"complex", make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", zeros(48)), "'<c8'"},
      {"structured", make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", zeros(8)),
       "unsupported dtype"},
      {"fortran not bool", make_npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", data24), "True or False"},
      {"negative dim", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", data24), "non-negative"},
      {"float dim", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 3), }", data24), "','"},
      {"shape not tuple", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", data24), "'('"},
      {"missing key", make_npy("{'descr': '<f4', 'shape': (2, 3), }", data24), "fortran_order"},
      {"unknown key", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", data24), "'x'"},
      {"repeated key", make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data24),
       "repeats"},
      {"not a dict", make_npy("('<f4', False, (2, 3))", data24), "'{'"},
      {"text after dict", make_npy(ok_dict + " x", data24), "after the header"},
      {"unterminated string", make_npy("{'descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }", data24), "':'"},
      {"overflow", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", data24),
       "overflows"},
      {"huge dim", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", data24),
       "overflows"},
      {"too big for the file", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", data24),
       "truncated"},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.name);
    const std::string p = dir / (c.name + ".npy");
    write_bytes(p, c.bytes);
    CHECK(refuses([&] { rcpu::io::NpyReader r(p); }, c.phrase));
  }
}

TEST_CASE("loaders refuse the wrong dimension count and dtype", "[npy]") {
  TempDir dir("npy");
  write_bytes(dir / "3d.npy", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", zeros(96)));
  write_bytes(dir / "1d.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", zeros(40)));
  write_bytes(dir / "int.npy", make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", zeros(32)));
  write_bytes(dir / "f.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", zeros(24)));
  write_bytes(dir / "two.npy", make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", zeros(16)));
  CHECK(refuses([&] { rcpu::io::load_npy_matrix<float>(dir / "3d.npy"); }, "(2, 3, 4)"));
  CHECK(refuses([&] { rcpu::io::NpyReader(dir / "3d.npy").read_all<float>(); }, "at most 2"));
  CHECK(refuses([&] { rcpu::io::NpyReader(dir / "3d.npy").read_rows<float>(1); }, "2-D"));
  CHECK(refuses([&] { rcpu::io::load_npy_matrix<double>(dir / "1d.npy"); }, "2-D"));
  CHECK(refuses([&] { rcpu::io::load_npy_matrix<double>(dir / "int.npy"); }, "float32 or float64"));
  CHECK(refuses([&] { rcpu::io::load_npy_vector<double>(dir / "3d.npy"); }, "vector"));
  CHECK(refuses([&] { rcpu::io::load_npy_vector<double>(dir / "int.npy"); }, "vector"));
  CHECK(refuses([&] { rcpu::io::load_npy_indices(dir / "f.npy"); }, "integer indices"));
  CHECK(refuses([&] { rcpu::io::load_npy_indices(dir / "int.npy"); }, "1-D"));
  CHECK(refuses([&] { rcpu::io::load_npy_int(dir / "two.npy"); }, "single integer"));
  CHECK(refuses([&] { rcpu::io::load_npy_matrix<double>(dir / "missing.npy"); }, "cannot open"));
  CHECK(refuses([&] { rcpu::io::load_npy_matrix<double>(dir.str()); }, "directory"));
}

TEST_CASE("a failed save leaves no file behind and an existing file intact", "[npy]") {
  TempDir dir("npy");
  CHECK(refuses([&] { rcpu::io::save_npy(dir / "no/such/dir/a.npy", Eigen::MatrixXd::Ones(2, 2)); }, "cannot open"));
  rcpu::io::save_npy(dir / "a.npy", Eigen::MatrixXd::Ones(2, 2));
  const std::string before = read_bytes(dir / "a.npy");
  rcpu::io::save_npy(dir / "a.npy", Eigen::MatrixXd::Zero(3, 1));  // replaces it whole
  CHECK(read_bytes(dir / "a.npy") != before);
  CHECK(rcpu::io::load_npy_matrix<double>(dir / "a.npy") == Eigen::MatrixXd::Zero(3, 1));
  CHECK(rcpu_test::list_dir(dir.str()) == std::vector<std::string>{"a.npy"});
}
