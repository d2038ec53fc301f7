// Tests of rcpu/io/gguf.hpp on GGUF files built byte by byte: metadata of every type, the tensor table,
// alignment, dequantization of every supported type against hand-computed values, and every error path
// (truncation at each byte, bad magic/version, overflowing counts and offsets, misalignment, unknown types).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <rcpu/io/gguf.hpp>

#include "gguf_builder.hpp"
#include "support.hpp"

using rcpu::io::GgmlType;
using rcpu::io::GgufFile;
using rcpu::io::GgufValueType;
using rcpu_test::Bytes;
using rcpu_test::GgufBuilder;

namespace {

GgufFile parse(const std::vector<std::uint8_t>& b) { return GgufFile::from_memory(b.data(), b.size(), "test.gguf"); }

// The message of the rcpu::invalid_argument that parsing throws ("" if it parses).
std::string error_of(const std::vector<std::uint8_t>& b) {
  try {
    parse(b);
  } catch (const rcpu::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

std::vector<int> iota_q(int n, int mod, int offset = 0) {
  std::vector<int> q(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) q[static_cast<std::size_t>(j)] = (j * 7 + offset) % mod;
  return q;
}

std::vector<std::uint8_t> concat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A small valid file with metadata and three tensors.
GgufBuilder sample() {
  GgufBuilder g;
  g.kv_string("general.architecture", "llama").kv_u32("llama.block_count", 2).kv_f32s("scores", {0.5f, -1.0f});
  g.tensor_f32("a", {3, 2}, {1, 2, 3, 4, 5, 6});
  g.tensor("b", 8, {32}, rcpu_test::q8_0_block(0.5f, iota_q(32, 200, -100)));
  g.tensor_f32("c", {5}, {1, 1, 1, 1, 1});
  return g;
}

}  // namespace

TEST_CASE("gguf: metadata of every type, versions 2 and 3") {
  for (std::uint32_t version : {2u, 3u}) {
    GgufBuilder g;
    g.version = version;
    g.kv_u8("u8", 200).kv_i8("i8", -100).kv_u16("u16", 60000).kv_i16("i16", -30000).kv_u32("u32", 4000000000u);
    g.kv_i32("i32", -2000000000).kv_f32("f32", 0.25f).kv_bool("yes", true).kv_bool("no", false);
    g.kv_string("str", "h\xC3\xA9llo").kv_u64("u64", 1ull << 40).kv_i64("i64", -(1ll << 40)).kv_f64("f64", -1.5e300);
    g.kv_strings("strs", {"a", "", "bc"}).kv_f32s("floats", {1.5f, -2.0f}).kv_i32s("ints", {7, -8, 9});
    // An array of arrays of uint8: [[1, 2], []].
    Bytes nested;
    nested.u32(9).u64(2).u32(0).u64(2).u8(1).u8(2).u32(0).u64(0);
    g.kv_raw("nested", 9, nested.data);
    const GgufFile f = parse(g.build());
    CHECK(f.version() == version);
    CHECK(f.metadata().size() == 17);
    CHECK(f.tensors().empty());
    CHECK(f.get("u8").type() == GgufValueType::uint8);
    CHECK(f.get_int("u8", 0) == 200);
    CHECK(f.get_int("i8", 0) == -100);
    CHECK(f.get_int("u16", 0) == 60000);
    CHECK(f.get_int("i16", 0) == -30000);
    CHECK(f.get_int("u32", 0) == 4000000000ll);
    CHECK(f.get_int("i32", 0) == -2000000000ll);
    CHECK(f.get_double("f32", 0) == 0.25);
    CHECK(f.get_bool("yes", false));
    CHECK_FALSE(f.get_bool("no", true));
    CHECK(f.get_string("str", "") == "h\xC3\xA9llo");
    CHECK(f.get_int("u64", 0) == (1ll << 40));
    CHECK(f.get_int("i64", 0) == -(1ll << 40));
    CHECK(f.get_double("f64", 0) == -1.5e300);
    CHECK(f.get("strs").strings() == std::vector<std::string>{"a", "", "bc"});
    CHECK(f.get("strs").element_type() == GgufValueType::string);
    CHECK(f.get("floats").floats() == std::vector<float>{1.5f, -2.0f});
    CHECK(f.get("ints").ints() == std::vector<std::int64_t>{7, -8, 9});
    const auto& outer = f.get("nested");
    REQUIRE(outer.size() == 2);
    CHECK(outer.at(0).ints() == std::vector<std::int64_t>{1, 2});
    CHECK(outer.at(0).at(1).type() == GgufValueType::uint8);
    CHECK(outer.at(1).size() == 0);
    CHECK_THROWS_AS(outer.at(2), rcpu::invalid_argument);
    CHECK(f.get("ints").at(1).as_int() == -8);
    CHECK(f.get("floats").at(0).as_double() == 1.5);
    CHECK_THROWS_AS(f.get("ints").strings(), rcpu::invalid_argument);
    CHECK_THROWS_AS(f.get("u8").at(0), rcpu::invalid_argument);
    // Defaults, missing keys and wrong types.
    CHECK(f.get_int("absent", 42) == 42);
    CHECK_FALSE(f.has("absent"));
    CHECK_THROWS_AS(f.get("absent"), rcpu::invalid_argument);
    CHECK_THROWS_AS(f.get_string("u8", ""), rcpu::invalid_argument);
    CHECK_THROWS_AS(f.get_int("str", 0), rcpu::invalid_argument);
    CHECK_THROWS_AS(f.get("strs").floats(), rcpu::invalid_argument);
    // First key in file order.
    CHECK(f.metadata().front().first == "u8");
  }
}

TEST_CASE("gguf: tensor table, layout and dequantization of every supported type") {
  GgufBuilder g;
  Bytes f16, bf16, f64, i8, i16, i32;
  const std::vector<float> f16v{1.5f, -2.0f, 65504.0f, 6.103515625e-05f, 5.9604644775390625e-08f, 0.0f};
  for (float v : f16v) f16.f16(v);
  f16.u16(0x8000).u16(0x7C00).u16(0xFC00).u16(0x0200);  // -0, +inf, -inf, subnormal 2^-15
  for (std::uint16_t v : {0x3F80, 0xC040, 0x0000}) bf16.u16(v);  // 1, -3, 0
  f64.f64(0.1).f64(-3.0);
  i8.u8(0x80).u8(0x7F);
  i16.u16(0x8000).u16(1234);
  i32.u32(0xFFFFFFFF).u32(77);
  g.tensor_f32("f32", {2, 3}, {1, 2, 3, 4, 5, 6});
  g.tensor("f16", 1, {10}, f16.data);
  g.tensor("bf16", 30, {3}, bf16.data);
  g.tensor("f64", 28, {2}, f64.data);
  g.tensor("i8", 24, {2}, i8.data);
  g.tensor("i16", 25, {2}, i16.data);
  g.tensor("i32", 26, {2}, i32.data);
  const auto q4 = iota_q(32, 16), q5 = iota_q(32, 32, 3), q8 = iota_q(32, 256, -128);
  g.tensor("q4_0", 2, {64}, concat(rcpu_test::q4_0_block(0.5f, q4), rcpu_test::q4_0_block(-2.0f, q4)));
  g.tensor("q4_1", 3, {32}, rcpu_test::q4_1_block(0.25f, -1.0f, q4));
  g.tensor("q5_0", 6, {32}, rcpu_test::q5_block(false, 0.125f, 0.0f, q5));
  g.tensor("q5_1", 7, {32}, rcpu_test::q5_block(true, 2.0f, 0.5f, q5));
  g.tensor("q8_0", 8, {32, 2}, concat(rcpu_test::q8_0_block(0.0625f, q8), rcpu_test::q8_0_block(1.0f, q8)));
  g.tensor("q8_1", 9, {32}, std::vector<std::uint8_t>(36, 0));
  const std::vector<std::uint8_t> bytes = g.build();
  const GgufFile f = parse(bytes);

  REQUIRE(f.tensors().size() == 13);
  CHECK(f.alignment() == 32);
  CHECK(f.data_offset() % 32 == 0);
  for (const auto& t : f.tensors()) {
    CHECK(t.offset % 32 == 0);
    CHECK(t.file_offset + t.n_bytes <= f.file_size());
  }
  const auto& tf = f.tensor("f32");
  CHECK(tf.shape == std::vector<std::uint64_t>{2, 3});
  CHECK(tf.n_elements == 6);
  CHECK(tf.n_bytes == 24);
  CHECK(f.tensor("q8_0").n_bytes == 68);
  CHECK(f.tensor("q8_1").type == GgmlType::q8_1);
  CHECK(std::string(rcpu::io::to_string(GgmlType::q4_1)) == "Q4_1");
  // PyTorch convention: shape {d_in = 2, d_out = 3} is a 3 x 2 matrix with rows contiguous in the file.
  const Eigen::MatrixXf m = f.tensor_matrix("f32");
  REQUIRE(m.rows() == 3);
  REQUIRE(m.cols() == 2);
  CHECK(m(0, 0) == 1);
  CHECK(m(0, 1) == 2);
  CHECK(m(2, 1) == 6);

  const auto h = f.tensor_values("f16");
  for (std::size_t i = 0; i < f16v.size(); ++i) CHECK(h[i] == f16v[i]);
  CHECK(h[6] == 0.0f);
  CHECK(std::signbit(h[6]));
  CHECK(h[7] == std::numeric_limits<float>::infinity());
  CHECK(h[8] == -std::numeric_limits<float>::infinity());
  CHECK(h[9] == std::ldexp(1.0f, -15));
  CHECK(f.tensor_values("bf16") == std::vector<float>{1.0f, -3.0f, 0.0f});
  CHECK(f.tensor_values("f64") == std::vector<float>{0.1f, -3.0f});
  CHECK(f.tensor_values("i8") == std::vector<float>{-128.0f, 127.0f});
  CHECK(f.tensor_values("i16") == std::vector<float>{-32768.0f, 1234.0f});
  CHECK(f.tensor_values("i32") == std::vector<float>{-1.0f, 77.0f});

  const auto v40 = f.tensor_values("q4_0");
  for (int j = 0; j < 32; ++j) {
    CHECK(v40[static_cast<std::size_t>(j)] == static_cast<float>(q4[static_cast<std::size_t>(j)] - 8) * 0.5f);
    CHECK(v40[static_cast<std::size_t>(32 + j)] == static_cast<float>(q4[static_cast<std::size_t>(j)] - 8) * -2.0f);
  }
  const auto v41 = f.tensor_values("q4_1");
  for (int j = 0; j < 32; ++j)
    CHECK(v41[static_cast<std::size_t>(j)] == static_cast<float>(q4[static_cast<std::size_t>(j)]) * 0.25f - 1.0f);
  const auto v50 = f.tensor_values("q5_0");
  for (int j = 0; j < 32; ++j)
    CHECK(v50[static_cast<std::size_t>(j)] == static_cast<float>(q5[static_cast<std::size_t>(j)] - 16) * 0.125f);
  const auto v51 = f.tensor_values("q5_1");
  for (int j = 0; j < 32; ++j)
    CHECK(v51[static_cast<std::size_t>(j)] == static_cast<float>(q5[static_cast<std::size_t>(j)]) * 2.0f + 0.5f);
  const Eigen::MatrixXf m8 = f.tensor_matrix("q8_0");  // 2 rows of 32
  REQUIRE(m8.rows() == 2);
  for (int j = 0; j < 32; ++j) {
    CHECK(m8(0, j) == static_cast<float>(q8[static_cast<std::size_t>(j)]) * 0.0625f);
    CHECK(m8(1, j) == static_cast<float>(q8[static_cast<std::size_t>(j)]));
  }
  // Known type that rcpu cannot convert: parses, but reading it names the type.
  try {
    f.tensor_values("q8_1");
    FAIL("expected an exception");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(contains(e.what(), "Q8_1"));
    CHECK(contains(e.what(), "q8_1"));
  }
  CHECK_THROWS_AS(f.tensor("absent"), rcpu::invalid_argument);
  CHECK(f.find_tensor("absent") == nullptr);
}

TEST_CASE("gguf: general.alignment") {
  GgufBuilder g = sample();
  g.alignment = 64;
  g.kv_u32("general.alignment", 64);
  const GgufFile f = parse(g.build());
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  CHECK(f.tensor_values("c") == std::vector<float>(5, 1.0f));

  for (std::uint32_t bad : {0u, 3u, 48u}) {
    GgufBuilder b = sample();
    b.kv_u32("general.alignment", bad);
    CHECK(contains(error_of(b.build()), "general.alignment"));
  }
  GgufBuilder s = sample();
  s.kv_string("general.alignment", "32");
  CHECK(contains(error_of(s.build()), "general.alignment must be an integer"));
}

TEST_CASE("gguf: every truncation of a valid file throws, and nothing past the last tensor is needed") {
  const std::vector<std::uint8_t> full = sample().build();
  const GgufFile f = parse(full);
  std::uint64_t needed = 0;
  for (const auto& t : f.tensors()) needed = std::max(needed, t.file_offset + t.n_bytes);
  REQUIRE(needed <= full.size());
  for (std::size_t len = 0; len < full.size(); ++len) {
    const std::vector<std::uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string e = error_of(cut);
    if (len < needed) {
      INFO("length " << len);
      CHECK(!e.empty());
      CHECK(contains(e, "test.gguf"));
    } else {
      CHECK(e.empty());
    }
  }
}

TEST_CASE("gguf: malformed headers and metadata fail with a clear message") {
  const auto with = [](auto edit) {
    GgufBuilder g = sample();
    edit(g);
    return error_of(g.build());
  };
  CHECK(contains(with([](GgufBuilder& g) { g.magic = "GGML"; }), "bad magic"));
  CHECK(contains(with([](GgufBuilder& g) { g.version = 1; }), "version 1"));
  CHECK(contains(with([](GgufBuilder& g) { g.version = 4; }), "unsupported GGUF version 4"));
  CHECK(contains(with([](GgufBuilder& g) { g.version = 0x03000000u; }), "big-endian"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_count_override = 1ull << 62; }), "metadata count"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensor_count_override = ~0ull; }), "tensor count"));
  CHECK(!with([](GgufBuilder& g) { g.kv_count_override = 4; }).empty());  // tensor table read as metadata
  // A key whose length runs past the end of the file.
  CHECK(contains(with([](GgufBuilder& g) { g.kvs.insert(g.kvs.begin(), Bytes().u64(1ull << 63).data); }),
                 "claims a length"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("t", 13, Bytes().u32(0).data); }), "unknown value type 13"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("a", 9, Bytes().u32(77).u64(0).data); }),
                 "unknown element type 77"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("a", 9, Bytes().u32(4).u64(1ull << 61).data); }),
                 "remaining bytes"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("a", 9, Bytes().u32(8).u64(1ull << 59).data); }),
                 "remaining bytes"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("b", 7, Bytes().u8(2).data); }), "must be 0 or 1"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_raw("bs", 9, Bytes().u32(7).u64(3).u8(1).u8(0).u8(5).data); }),
                 "must be 0 or 1"));
  CHECK(contains(with([](GgufBuilder& g) { g.kv_u32("llama.block_count", 3); }), "duplicate metadata key"));
  // Arrays nested deeper than the limit.
  CHECK(contains(with([](GgufBuilder& g) {
                   Bytes b;
                   for (int i = 0; i < 12; ++i) b.u32(9).u64(1);
                   b.u32(0).u64(0);
                   g.kv_raw("deep", 9, b.data);
                 }),
                 "nested deeper"));
}

TEST_CASE("gguf: malformed tensor tables fail with a clear message") {
  const auto with = [](auto edit) {
    GgufBuilder g = sample();
    edit(g);
    return error_of(g.build());
  };
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[0].shape = {1, 1, 1, 1, 6}; }), "5 dimensions"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[0].shape = {1ull << 40, 1ull << 40}; }), "overflows"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[0].shape = {~0ull}; }), "overflows"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[1].type = 99; }), "unknown ggml type 99"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[1].shape = {16}; }), "not a multiple of the Q8_0 block size"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[1].offset_override = 4; }), "not a multiple of the alignment"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[2].offset_override = 1ull << 20; }), "past the end"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[2].offset_override = ~0ull - 31; }), "past the end"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[2].offset_override = 0; }), "overlap"));
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[2].name = "a"; }), "duplicate tensor name 'a'"));
  // Declared size larger than the data that is there.
  CHECK(contains(with([](GgufBuilder& g) { g.tensors[2].shape = {1000}; }), "past the end"));
  // n_dims = 0: a scalar, one element.
  GgufBuilder s;
  s.tensor("scalar", 0, {}, Bytes().f32(2.5f).data);
  const GgufFile f = parse(s.build());
  CHECK(f.tensor("scalar").n_elements == 1);
  CHECK(f.tensor_values("scalar") == std::vector<float>{2.5f});
}

TEST_CASE("gguf: dequantize() checks its arguments") {
  std::vector<float> out(32);
  const std::vector<std::uint8_t> blk = rcpu_test::q8_0_block(1.0f, iota_q(32, 100));
  CHECK_NOTHROW(rcpu::io::dequantize(GgmlType::q8_0, blk.data(), blk.size(), out.data(), 32));
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q8_0, blk.data(), blk.size() - 1, out.data(), 32),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q8_0, blk.data(), blk.size(), out.data(), 16), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q4_k, blk.data(), blk.size(), out.data(), 32), rcpu::invalid_argument);
  CHECK(rcpu::io::ggml_type_traits(4) == nullptr);  // a removed ggml type
}

TEST_CASE("gguf: open() memory-maps a file; missing and empty files fail") {
  const std::vector<std::uint8_t> bytes = sample().build();
  const auto dir = std::filesystem::temp_directory_path();
  const auto path = dir / ("rcpu_test_gguf_" + std::to_string(std::rand()) + ".gguf");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  {
    const GgufFile f = GgufFile::open(path.string());
    CHECK(f.file_size() == bytes.size());
    CHECK(f.get_string("general.architecture", "") == "llama");
    CHECK(f.tensor_values("a") == std::vector<float>{1, 2, 3, 4, 5, 6});
    const GgufFile copy = f;  // shares the mapping
    CHECK(copy.tensor_values("b") == f.tensor_values("b"));
  }
  { std::ofstream truncate(path, std::ios::binary | std::ios::trunc); }
  CHECK_THROWS_AS(GgufFile::open(path.string()), rcpu::invalid_argument);
  std::filesystem::remove(path);
  CHECK_THROWS_AS(GgufFile::open(path.string()), rcpu::invalid_argument);
}
