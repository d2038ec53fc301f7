// rcpu::io::GgufWriter: what it writes, rcpu's reader gives back exactly (every metadata type, every
// tensor type, alignment); the bytes follow the GGUF layout; a failed write leaves nothing behind.
#include <rcpu/io/gguf_writer.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "../io/io_support.hpp"
#include "support.hpp"

using rcpu::io::GgmlType;
using rcpu::io::GgufFile;
using rcpu::io::GgufValue;
using rcpu::io::GgufValueType;
using rcpu::io::GgufWriter;
using rcpu_test::read_bytes;
using rcpu_test::TempDir;
using rcpu_test::write_bytes;

namespace {

// A writer with a key of every scalar type, arrays of each, a string array and a nested array.
GgufWriter gw_every_type(std::uint64_t alignment) {
  GgufWriter w(alignment);
  w.set("k.u8", GgufValue::make_uint(GgufValueType::uint8, 255));
  w.set("k.i8", GgufValue::make_int(GgufValueType::int8, -128));
  w.set("k.u16", GgufValue::make_uint(GgufValueType::uint16, 65535));
  w.set("k.i16", GgufValue::make_int(GgufValueType::int16, -32768));
  w.set_u32("k.u32", 4294967295u);
  w.set_i32("k.i32", std::numeric_limits<std::int32_t>::min());
  w.set_f32("k.f32", 0.1f);
  w.set_bool("k.bool", true);
  w.set_string("k.str", std::string("h\xC3\xA9llo\0x", 8));  // UTF-8 and an embedded NUL
  w.set_string("k.empty", "");
  w.set_u64("k.u64", std::numeric_limits<std::uint64_t>::max());
  w.set("k.i64", GgufValue::make_int(GgufValueType::int64, std::numeric_limits<std::int64_t>::min()));
  w.set_f64("k.f64", -1.0 / 3.0);
  w.set_f32("k.nan", std::numeric_limits<float>::quiet_NaN());
  for (GgufValueType t : {GgufValueType::uint8, GgufValueType::int8, GgufValueType::uint16, GgufValueType::int16,
                          GgufValueType::uint32, GgufValueType::int32, GgufValueType::uint64, GgufValueType::int64})
    w.set(std::string("a.") + rcpu::io::to_string(t),
          GgufValue::make_int_array(t, rcpu::io::detail::is_signed_type(t) ? std::vector<std::int64_t>{-1, 0, 7}
                                                                           : std::vector<std::int64_t>{0, 1, 200}));
  w.set("a.f32", GgufValue::make_float_array(GgufValueType::float32, {1.5, -2.25, 1e-30}));
  w.set("a.f64", GgufValue::make_float_array(GgufValueType::float64, {1.0 / 7.0, -0.0}));
  w.set("a.bool", GgufValue::make_packed_array(GgufValueType::boolean, {1, 0, 1}));
  w.set("a.str", GgufValue::make_string_array({"<s>", "", "\xE2\x96\x81the"}));
  w.set("a.empty", GgufValue::make_int_array(GgufValueType::int32, {}));
  w.set("a.nested", GgufValue::make_array(GgufValueType::array,
                                          {GgufValue::make_int_array(GgufValueType::int32, {1, 2}),
                                           GgufValue::make_string_array({"x"})}));
  return w;
}

std::vector<float> gw_values(std::size_t n, unsigned seed) {
  std::vector<float> v(n);
  unsigned x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = (float(x >> 8) / float(1u << 24) - 0.5f) * 4.0f;
  }
  return v;
}

}  // namespace

TEST_CASE("gguf writer: every metadata type and tensor type reads back exactly", "[gguf_writer]") {
  for (std::uint64_t alignment : {std::uint64_t(32), std::uint64_t(64), std::uint64_t(1)}) {
    GgufWriter w = gw_every_type(alignment);
    const std::vector<float> v = gw_values(64 * 3, 7);
    for (GgmlType t : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0, GgmlType::q4_0})
      w.add_tensor(std::string("t.") + rcpu::io::to_string(t), t, {64, 3}, v);
    w.add_tensor("t.odd", GgmlType::f32, {5, 1, 3}, std::vector<float>(15, 2.5f));  // 60 bytes: padding follows
    // Ready-made bytes of a type rcpu only reads (Q4_1: 20-byte blocks).
    std::vector<std::uint8_t> q41(20 * 2, 0x11);
    w.add_tensor_bytes("t.q4_1", GgmlType::q4_1, {64}, q41);

    const std::vector<std::uint8_t> bytes = w.to_bytes();
    REQUIRE(bytes.size() == w.file_size());
    const GgufFile f = GgufFile::from_buffer(bytes);
    CHECK(f.version() == 3);
    CHECK(f.alignment() == alignment);
    CHECK(f.data_offset() % alignment == 0);
    REQUIRE(f.metadata().size() == w.metadata().size());
    for (std::size_t i = 0; i < w.metadata().size(); ++i) {
      INFO(w.metadata()[i].first);
      CHECK(f.metadata()[i].first == w.metadata()[i].first);
      CHECK(f.metadata()[i].second == w.metadata()[i].second);
    }
    CHECK(f.get_string("k.str", "") == std::string("h\xC3\xA9llo\0x", 8));
    CHECK(f.get("k.i64").as_int() == std::numeric_limits<std::int64_t>::min());
    REQUIRE(f.tensors().size() == w.tensors().size());
    for (std::size_t i = 0; i < w.tensors().size(); ++i) {
      const GgufWriter::Tensor& t = w.tensors()[i];
      const rcpu::io::GgufTensorInfo& r = f.tensors()[i];
      INFO(t.name);
      CHECK(r.name == t.name);
      CHECK(r.type == t.type);
      CHECK(r.shape == t.shape);
      CHECK(r.n_bytes == t.n_bytes);
      CHECK(r.file_offset % alignment == 0);
      std::vector<std::uint8_t> expect(t.n_bytes);
      t.source(expect.data());
      CHECK(std::vector<std::uint8_t>(f.tensor_data(r), f.tensor_data(r) + r.n_bytes) == expect);
    }
    // F32 is lossless; the others give back dequantize(quantize(v)).
    CHECK(f.tensor_values("t.F32") == v);
    for (GgmlType t : {GgmlType::f16, GgmlType::bf16, GgmlType::q8_0, GgmlType::q4_0}) {
      std::vector<std::uint8_t> q(rcpu::io::ggml_bytes(t, v.size()));
      rcpu::io::quantize(t, v.data(), v.size(), q.data());
      std::vector<float> back(v.size());
      rcpu::io::dequantize(t, q.data(), q.size(), back.data(), v.size());
      CHECK(f.tensor_values(std::string("t.") + rcpu::io::to_string(t)) == back);
    }
  }
}

TEST_CASE("gguf writer: the byte layout is GGUF v3's", "[gguf_writer]") {
  GgufWriter w;
  w.set_u32("a", 7);
  w.add_tensor("x", GgmlType::f32, {2}, {1.0f, -2.0f});
  const std::vector<std::uint8_t> b = w.to_bytes();
  // magic, version 3, 1 tensor, 1 key; key "a" UINT32 7; tensor "x": 1 dim of 2, F32, offset 0.
  const std::vector<std::uint8_t> head = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                          1, 0, 0, 0, 0, 0, 0, 0, 'a', 4, 0, 0, 0, 7, 0, 0, 0,
                                          1, 0, 0, 0, 0, 0, 0, 0, 'x', 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  // 74 bytes of header and tensor table padded to 96, then 8 data bytes padded to 32.
  REQUIRE(b.size() == 128);
  CHECK(std::vector<std::uint8_t>(b.begin(), b.begin() + std::ptrdiff_t(head.size())) == head);
  CHECK(std::all_of(b.begin() + 74, b.begin() + 96, [](std::uint8_t x) { return x == 0; }));
  const std::vector<std::uint8_t> data = {0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0};  // 1.0f, -2.0f
  CHECK(std::vector<std::uint8_t>(b.begin() + 96, b.begin() + 104) == data);
  CHECK(std::all_of(b.begin() + 104, b.end(), [](std::uint8_t x) { return x == 0; }));
}

TEST_CASE("gguf writer: set replaces in place, remove and copy_metadata", "[gguf_writer]") {
  GgufWriter w;
  w.set_u32("first", 1).set_string("second", "x").set_u32("first", 2);
  REQUIRE(w.metadata().size() == 2);
  CHECK(w.metadata()[0].first == "first");
  CHECK(w.find("first")->as_int() == 2);
  CHECK(w.remove("first"));
  CHECK_FALSE(w.remove("first"));
  CHECK(w.find("second") != nullptr);
  GgufWriter src = gw_every_type(32);
  const GgufFile f = GgufFile::from_buffer(src.to_bytes());
  GgufWriter copy;
  copy.copy_metadata(f, "a.");
  CHECK(copy.metadata().size() == 14);
  CHECK(*copy.find("a.str") == *f.find("a.str"));
}

TEST_CASE("gguf writer: bad tensors and keys throw rcpu::invalid_argument", "[gguf_writer]") {
  GgufWriter w;
  CHECK_THROWS_AS(GgufWriter(48), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("", GgufValue::make_bool(true)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set_u32("general.alignment", 64), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("", GgmlType::f32, {1}, {0.0f}), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor(std::string(64, 'n'), GgmlType::f32, {1}, {0.0f}), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("z", GgmlType::f32, {0}, {}), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("five", GgmlType::f32, {1, 1, 1, 1, 1}, {0.0f}), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("q", GgmlType::q8_0, {48}, std::vector<float>(48, 1.0f)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("k", GgmlType::q4_k, {256}, std::vector<float>(256, 1.0f)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor("n", GgmlType::f32, {3}, {1.0f}), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.add_tensor_bytes("b", GgmlType::q4_1, {32}, std::vector<std::uint8_t>(19)), rcpu::invalid_argument);
  CHECK(w.tensors().empty());  // nothing half-added
  w.add_tensor("x", GgmlType::f32, {1}, {0.0f});
  CHECK_THROWS_AS(w.add_tensor("x", GgmlType::f32, {1}, {0.0f}), rcpu::invalid_argument);
  // Values that GGUF cannot store as their type says are refused when set, naming the key.
  CHECK_THROWS_AS(w.set("default", GgufValue()), rcpu::invalid_argument);  // a UINT8 holding nothing
  CHECK_THROWS_AS(w.set("big", GgufValue::make_uint(GgufValueType::uint8, 300)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("neg", GgufValue::make_int(GgufValueType::uint32, -1)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("i16", GgufValue::make_int(GgufValueType::int16, 40000)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("str", GgufValue::make_uint(GgufValueType::string, 1)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("f", GgufValue::make_int(GgufValueType::float32, 1)), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("odd", GgufValue::make_packed_array(GgufValueType::uint32, {1, 2, 3, 4, 5})), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("b", GgufValue::make_packed_array(GgufValueType::boolean, {0, 2})), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("ps", GgufValue::make_packed_array(GgufValueType::string, {1})), rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("mixed", GgufValue::make_array(GgufValueType::string, {GgufValue::make_bool(true)})),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(w.set("general.alignment", GgufValue::make_uint(GgufValueType::uint64, 32)), rcpu::invalid_argument);
  try {
    w.set("my.key", GgufValue::make_uint(GgufValueType::uint8, 300));
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("'my.key'") != std::string::npos);
  }
  CHECK(w.metadata().empty());
  w.set_u32("general.alignment", 32);  // the writer's own, as UINT32: fine
  CHECK_THROWS_AS(GgufValue::make_int_array(GgufValueType::uint8, {256}), rcpu::invalid_argument);
  CHECK_THROWS_AS(GgufValue::make_int_array(GgufValueType::int8, {-129}), rcpu::invalid_argument);
  CHECK_THROWS_AS(GgufValue::make_int_array(GgufValueType::uint64, {-1}), rcpu::invalid_argument);
}

TEST_CASE("gguf writer: write() is all or nothing", "[gguf_writer]") {
  TempDir t("gguf-writer");
  GgufWriter w = gw_every_type(32);
  w.add_tensor("x", GgmlType::f16, {4}, {1.0f, 2.0f, 3.0f, 4.0f});
  w.write(t / "model.gguf");
  const GgufFile f = GgufFile::open(t / "model.gguf");
  CHECK(f.tensor_values("x") == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
  CHECK(rcpu_test::list_dir(t.str()) == std::vector<std::string>{"model.gguf"});

  // A tensor source that fails halfway: the existing file is untouched and no temporary remains.
  const std::string before = read_bytes(t / "model.gguf");
  GgufWriter bad;
  bad.add_tensor("ok", GgmlType::f32, {1}, {1.0f});
  bad.add_tensor_source("fails", GgmlType::f32, {1}, [](std::uint8_t*) { throw rcpu::invalid_argument("no data"); });
  CHECK_THROWS_AS(bad.write(t / "model.gguf"), rcpu::invalid_argument);
  CHECK(read_bytes(t / "model.gguf") == before);
  CHECK(rcpu_test::list_dir(t.str()) == std::vector<std::string>{"model.gguf"});
  // A non-finite value fails when it is quantized: a source-produced Q8_0 tensor.
  GgufWriter nan;
  nan.add_tensor_source("nan", GgmlType::q8_0, {32}, [](std::uint8_t* out) {
    std::vector<float> v(32, std::numeric_limits<float>::quiet_NaN());
    rcpu::io::quantize(GgmlType::q8_0, v.data(), 32, out);
  });
  CHECK_THROWS_AS(nan.write(t / "new.gguf"), rcpu::invalid_argument);
  CHECK(rcpu_test::list_dir(t.str()) == std::vector<std::string>{"model.gguf"});
  // A directory that does not exist.
  CHECK_THROWS_AS(w.write(t / "missing/dir/model.gguf"), rcpu::invalid_argument);
  // The target is a directory.
  std::filesystem::create_directory(t / "adir");
  CHECK_THROWS_AS(w.write(t / "adir"), rcpu::invalid_argument);
  CHECK(std::filesystem::is_directory(t / "adir"));
}
