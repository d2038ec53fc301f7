// Oracles for rcpu/io/ggml_quants.hpp. Against PyPI gguf 0.19.0 (tests/data/ggml_quants, written by
// tools/quants_reference/make_fixtures.py): quantize() to F16, BF16, Q8_0 and Q4_0 gives gguf.quants'
// bytes and dequantize() its floats, bit for bit, for every type with a fixture (the K-quants
// included). Without fixtures: the half conversions over all 65536 halves and at every rounding
// midpoint, bfloat16 rounding against a double-precision oracle, the error bounds of Q8_0 and Q4_0,
// and the refusals.
#include <rcpu/io/ggml_quants.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

using rcpu::io::GgmlType;

// One case of tests/data/ggml_quants (format: make_fixtures.py): float inputs (quantize cases only),
// the bytes gguf.quants wrote or read, and the floats it dequantized them to.
struct GqCase {
  std::string name;
  GgmlType type = GgmlType::f32;
  std::uint64_t n = 0;
  std::vector<float> input;
  std::vector<std::uint8_t> bytes;
  std::vector<float> output;
};

std::string gq_fixture_path(const std::string& name) { return std::string(RCPU_SOURCE_DIR "/tests/data/ggml_quants/") + name; }

// Loads a fixture; a missing or malformed file fails the test (the fixtures are part of the repository).
GqCase gq_load(const std::string& name) {
  const std::string path = gq_fixture_path(name);
  std::ifstream in(path);
  INFO("fixture " << path << " (tools/quants_reference/README.md)");
  REQUIRE(in.good());
  // Text: '#' comment lines, the others hex digits of the case's bytes.
  std::string raw, line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    REQUIRE(line.size() % 2 == 0);
    for (std::size_t i = 0; i < line.size(); i += 2) {
      const std::string byte = line.substr(i, 2);
      REQUIRE(byte.find_first_not_of("0123456789abcdef") == std::string::npos);
      raw += static_cast<char>(std::stoi(byte, nullptr, 16));
    }
  }
  REQUIRE(raw.size() >= 32);
  const auto* p = reinterpret_cast<const std::uint8_t*>(raw.data());
  REQUIRE(raw.compare(0, 4, "GQF1") == 0);
  GqCase c;
  c.name = name;
  c.type = static_cast<GgmlType>(rcpu::io::detail::load_u32(p + 4));
  c.n = rcpu::io::detail::load_u64(p + 8);
  const std::uint64_t n_in = rcpu::io::detail::load_u64(p + 16), n_bytes = rcpu::io::detail::load_u64(p + 24);
  REQUIRE((n_in == 0 || n_in == c.n));
  REQUIRE(c.n < (1u << 24));
  REQUIRE(n_bytes < (1u << 26));
  REQUIRE(raw.size() == 32 + 4 * n_in + n_bytes + 4 * c.n);
  REQUIRE(n_bytes == rcpu::io::ggml_bytes(c.type, c.n));
  const std::uint8_t* q = p + 32;
  for (std::uint64_t i = 0; i < n_in; ++i, q += 4) c.input.push_back(rcpu::io::detail::load_f32(q));
  c.bytes.assign(q, q + n_bytes);
  q += n_bytes;
  for (std::uint64_t i = 0; i < c.n; ++i, q += 4) c.output.push_back(rcpu::io::detail::load_f32(q));
  return c;
}

std::uint32_t gq_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float gq_from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::string gq_hex(std::uint32_t u) {
  std::ostringstream os;
  os << "0x" << std::hex << u;
  return os.str();
}

// quantize(c.input) == c.bytes; mismatches counted, the first one described.
void gq_check_quantize(const GqCase& c) {
  REQUIRE(c.input.size() == c.n);
  std::vector<std::uint8_t> got(c.bytes.size(), 0xEE);
  rcpu::io::quantize(c.type, c.input.data(), c.n, got.data());
  const std::uint64_t bs = rcpu::io::ggml_type_traits(static_cast<std::uint32_t>(c.type))->block_size;
  const std::uint64_t ts = c.bytes.size() / (c.n / bs);
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != c.bytes[i]) {
      if (bad++ == 0) {
        const std::uint64_t blk = i / ts;
        std::ostringstream os;
        os << "byte " << i << " (block " << blk << ", first input " << c.input[blk * bs] << " = "
           << gq_hex(gq_bits(c.input[blk * bs])) << "): rcpu " << int(got[i]) << ", gguf " << int(c.bytes[i]);
        first = os.str();
      }
    }
  INFO(c.name << ": " << bad << " of " << got.size() << " bytes differ; first: " << first);
  CHECK(bad == 0);
}

// dequantize(c.bytes) == c.output bit for bit (NaNs included).
void gq_check_dequantize(const GqCase& c) {
  std::vector<float> got(c.n, -1234.5f);
  rcpu::io::dequantize(c.type, c.bytes.data(), c.bytes.size(), got.data(), c.n);
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (gq_bits(got[i]) != gq_bits(c.output[i])) {
      if (bad++ == 0) {
        std::ostringstream os;
        os.precision(9);
        os << "element " << i << ": rcpu " << got[i] << " (" << gq_hex(gq_bits(got[i])) << "), gguf "
           << c.output[i] << " (" << gq_hex(gq_bits(c.output[i])) << ")";
        first = os.str();
      }
    }
  INFO(c.name << ": " << bad << " of " << got.size() << " values differ; first: " << first);
  CHECK(bad == 0);
}

// The value of a half in double, from its definition (no float arithmetic).
double gq_half_value(std::uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double s = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0) return s * std::ldexp(double(m), -24);
  if (e == 31) return m == 0 ? s * std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  return s * std::ldexp(double(1024 + m), e - 25);
}

// Float to bfloat16 from first principles: the nearer of the two neighbours in double, ties to the
// even one, infinity beyond (bfloat16's "next" value after the largest finite is 2^128), NaN quiet.
std::uint16_t gq_bf16_oracle(float f) {
  const std::uint32_t u = gq_bits(f);
  if (std::isnan(f)) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  const std::uint32_t sign = u & 0x80000000u, mag = u & 0x7FFFFFFFu;
  const std::uint32_t lo = mag >> 16, hi = lo + 1;
  if (mag == (lo << 16)) return static_cast<std::uint16_t>((sign >> 16) | lo);
  const double x = std::fabs(double(f)), vlo = double(gq_from_bits(lo << 16));
  const double vhi = hi == 0x7F80u ? std::ldexp(1.0, 128) : double(gq_from_bits(hi << 16));
  const double dlo = x - vlo, dhi = vhi - x;
  const std::uint32_t r = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1u) ? hi : lo);
  return static_cast<std::uint16_t>((sign >> 16) | r);
}

}  // namespace

TEST_CASE("ggml_quants: quantize() writes gguf.quants' bytes for F16, BF16, Q8_0 and Q4_0", "[ggml_quants]") {
  for (const char* name : {"quantize_f16.hex", "quantize_bf16.hex", "quantize_q8_0.hex", "quantize_q4_0.hex"}) {
    const GqCase c = gq_load(name);
    gq_check_quantize(c);
  }
}

TEST_CASE("ggml_quants: dequantize() gives gguf.quants' floats for every type", "[ggml_quants]") {
  const std::vector<std::pair<const char*, GgmlType>> cases = {
      {"quantize_f16.hex", GgmlType::f16},    {"quantize_bf16.hex", GgmlType::bf16},
      {"quantize_q8_0.hex", GgmlType::q8_0},  {"quantize_q4_0.hex", GgmlType::q4_0},
      {"dequantize_q4_0.hex", GgmlType::q4_0}, {"dequantize_q4_1.hex", GgmlType::q4_1},
      {"dequantize_q5_0.hex", GgmlType::q5_0}, {"dequantize_q5_1.hex", GgmlType::q5_1},
      {"dequantize_q8_0.hex", GgmlType::q8_0}, {"dequantize_q2_k.hex", GgmlType::q2_k},
      {"dequantize_q3_k.hex", GgmlType::q3_k}, {"dequantize_q4_k.hex", GgmlType::q4_k},
      {"dequantize_q5_k.hex", GgmlType::q5_k}, {"dequantize_q6_k.hex", GgmlType::q6_k},
      {"dequantize_q8_k.hex", GgmlType::q8_k}};
  for (const auto& nc : cases) {
    const GqCase c = gq_load(nc.first);
    INFO(c.name);
    CHECK(c.type == nc.second);
    gq_check_dequantize(c);
  }
}

TEST_CASE("ggml_quants: the K-quants are dequantizable, not quantizable, with ggml's block sizes", "[ggml_quants]") {
  struct Row {
    GgmlType type;
    std::uint64_t type_size;
  };
  for (const Row r : {Row{GgmlType::q2_k, 84}, Row{GgmlType::q3_k, 110}, Row{GgmlType::q4_k, 144},
                      Row{GgmlType::q5_k, 176}, Row{GgmlType::q6_k, 210}, Row{GgmlType::q8_k, 292}}) {
    const auto* t = rcpu::io::ggml_type_traits(static_cast<std::uint32_t>(r.type));
    REQUIRE(t != nullptr);
    INFO(t->name);
    CHECK(t->block_size == 256);
    CHECK(t->type_size == r.type_size);
    CHECK(t->dequantizable);
    CHECK_FALSE(t->quantizable);
    CHECK(rcpu::io::ggml_bytes(r.type, 512) == 2 * r.type_size);
  }
}

TEST_CASE("ggml_quants: half_to_float and float_to_half round-trip all 65536 halves", "[ggml_quants]") {
  using rcpu::io::detail::float_to_half;
  using rcpu::io::detail::half_to_float;
  std::size_t bad_value = 0, bad_trip = 0, bad_nan = 0;
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const float f = half_to_float(h);
    const bool is_nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0;
    if (std::isnan(f) != is_nan) ++bad_nan;
    if (is_nan) {
      // the payload and the quiet bit move to the float's top mantissa bits
      if ((gq_bits(f) & 0x807FFFFFu) != ((std::uint32_t(h & 0x8000) << 16) | (std::uint32_t(h & 0x3FF) << 13)))
        ++bad_value;
    } else if (double(f) != gq_half_value(h) || std::signbit(f) != bool(h & 0x8000)) {
      ++bad_value;
    }
    if (float_to_half(f) != h) ++bad_trip;  // NaNs too: sign, payload and class kept
  }
  CHECK(bad_nan == 0);
  CHECK(bad_value == 0);
  CHECK(bad_trip == 0);
  // a float NaN whose payload sits below the half's ten bits stays a NaN (numpy's 0x7C01)
  CHECK(float_to_half(gq_from_bits(0x7F800001u)) == 0x7C01u);
  CHECK(float_to_half(gq_from_bits(0xFFC00000u)) == 0xFE00u);
}

TEST_CASE("ggml_quants: float_to_half rounds to nearest even at every midpoint", "[ggml_quants]") {
  using rcpu::io::detail::float_to_half;
  std::size_t bad = 0, inexact = 0;
  // consecutive positive halves h, h + 1, subnormals included, and 65504 -> infinity (0x7C00, even)
  for (std::uint32_t h = 0; h < 0x7C00u; ++h) {
    const double a = gq_half_value(static_cast<std::uint16_t>(h));
    const double b = h + 1 == 0x7C00u ? 65536.0 : gq_half_value(static_cast<std::uint16_t>(h + 1));
    const float mid = static_cast<float>((a + b) / 2);  // exact: 12 significant bits
    if (double(mid) != (a + b) / 2) ++inexact;
    const std::uint16_t even = static_cast<std::uint16_t>((h & 1u) ? h + 1 : h);
    for (const float sgn : {1.0f, -1.0f}) {
      const std::uint16_t s = sgn < 0 ? 0x8000u : 0u;
      if (float_to_half(sgn * mid) != (s | even)) ++bad;
      if (float_to_half(sgn * std::nextafter(mid, 0.0f)) != (s | h)) ++bad;
      if (float_to_half(sgn * std::nextafter(mid, std::numeric_limits<float>::infinity())) != (s | (h + 1))) ++bad;
    }
  }
  CHECK(inexact == 0);
  CHECK(bad == 0);
  CHECK(float_to_half(65519.0f) == 0x7BFFu);
  CHECK(float_to_half(65520.0f) == 0x7C00u);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000u);
  CHECK(float_to_half(-std::ldexp(1.0f, -25)) == 0x8000u);
  CHECK(float_to_half(std::ldexp(3.0f, -26)) == 0x0001u);
  CHECK(float_to_half(std::numeric_limits<float>::infinity()) == 0x7C00u);
  CHECK(float_to_half(-std::numeric_limits<float>::max()) == 0xFC00u);
  CHECK(float_to_half(-0.0f) == 0x8000u);
}

TEST_CASE("ggml_quants: float_to_bf16 rounds to nearest even, NaNs quiet", "[ggml_quants]") {
  using rcpu::io::detail::float_to_bf16;
  std::size_t bad = 0;
  // every midpoint between consecutive positive bfloat16 (the largest finite's ties to infinity), +-1 ulp
  for (std::uint32_t b = 0; b < 0x7F80u; ++b) {
    for (const std::uint32_t s : {0u, 0x80000000u}) {
      const std::uint32_t mid = s | b << 16 | 0x8000u;
      const std::uint16_t sb = static_cast<std::uint16_t>(s >> 16);
      if (float_to_bf16(gq_from_bits(mid)) != (sb | ((b & 1u) ? b + 1 : b))) ++bad;
      if (float_to_bf16(gq_from_bits(mid - 1)) != (sb | b)) ++bad;
      if (float_to_bf16(gq_from_bits(mid + 1)) != (sb | (b + 1))) ++bad;
    }
  }
  CHECK(bad == 0);
  // random bit patterns (all classes) against the double-precision oracle
  std::mt19937 gen(20260);
  std::size_t bad_random = 0;
  for (int i = 0; i < 200000; ++i) {
    const float f = gq_from_bits(static_cast<std::uint32_t>(gen()));
    if (float_to_bf16(f) != gq_bf16_oracle(f)) ++bad_random;
  }
  CHECK(bad_random == 0);
  CHECK(float_to_bf16(gq_from_bits(0x7F800001u)) == 0x7FC0u);
  CHECK(float_to_bf16(gq_from_bits(0xFFA00000u)) == 0xFFE0u);
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80u);
  CHECK(float_to_bf16(-0.0f) == 0x8000u);
}

TEST_CASE("ggml_quants: Q8_0 and Q4_0 round trips stay within their bounds", "[ggml_quants]") {
  std::mt19937 gen(4242);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(-12.0f, 12.0f);
  const int nb = 256;
  std::vector<float> x(32 * nb), y(32 * nb);
  std::vector<std::uint8_t> q8(34 * nb), q4(18 * nb);
  for (int b = 0; b < nb; ++b) {
    const float scale = std::exp2(u(gen));
    for (int j = 0; j < 32; ++j) x[std::size_t(32 * b + j)] = g(gen) * scale;
  }
  SECTION("random blocks: |x - y| <= d / 2 (Q8_0), <= |d| (Q4_0), plus the rounding of d to half") {
    rcpu::io::quantize(GgmlType::q8_0, x.data(), x.size(), q8.data());
    rcpu::io::dequantize(GgmlType::q8_0, q8.data(), q8.size(), y.data(), y.size());
    std::size_t bad = 0;
    for (int b = 0; b < nb; ++b) {
      double amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(x[std::size_t(32 * b + j)])));
      const double d = double(static_cast<float>(amax) / 127.0f);
      const double dh = double(rcpu::io::detail::half_to_float(rcpu::io::detail::load_u16(&q8[std::size_t(34 * b)])));
      const double bound = d / 2 * (1 + 1e-6) + 127 * std::fabs(dh - d) + amax * 1e-7;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(double(x[std::size_t(32 * b + j)]) - double(y[std::size_t(32 * b + j)])) > bound) ++bad;
    }
    CHECK(bad == 0);

    rcpu::io::quantize(GgmlType::q4_0, x.data(), x.size(), q4.data());
    rcpu::io::dequantize(GgmlType::q4_0, q4.data(), q4.size(), y.data(), y.size());
    bad = 0;
    for (int b = 0; b < nb; ++b) {
      double amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(x[std::size_t(32 * b + j)])));
      const double d = amax / 8;
      const double dh = std::fabs(double(rcpu::io::detail::half_to_float(rcpu::io::detail::load_u16(&q4[std::size_t(18 * b)]))));
      const double bound = d * (1 + 1e-6) + 8 * std::fabs(dh - d) + amax * 1e-7;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(double(x[std::size_t(32 * b + j)]) - double(y[std::size_t(32 * b + j)])) > bound) ++bad;
    }
    CHECK(bad == 0);
  }
  SECTION("scales exact in half: within d / 2 (Q8_0), within |d| (Q4_0), exactly") {
    // max|x| = top * 2^e first in each block, the others uniform in (-top, top) * 2^e: d = +-2^e
    const auto fill = [&](float top) {
      for (int b = 0; b < nb; ++b) {
        const int e = int(gen() % 20) - 10;
        std::uniform_real_distribution<float> v(-top, top);
        x[std::size_t(32 * b)] = std::ldexp(top, e) * ((gen() & 1) ? 1.0f : -1.0f);
        for (int j = 1; j < 32; ++j) x[std::size_t(32 * b + j)] = std::ldexp(v(gen), e);
      }
    };
    fill(127.0f);
    rcpu::io::quantize(GgmlType::q8_0, x.data(), x.size(), q8.data());
    rcpu::io::dequantize(GgmlType::q8_0, q8.data(), q8.size(), y.data(), y.size());
    std::size_t bad = 0;
    for (int b = 0; b < nb; ++b) {
      const float d = rcpu::io::detail::half_to_float(rcpu::io::detail::load_u16(&q8[std::size_t(34 * b)]));
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[std::size_t(32 * b + j)] - y[std::size_t(32 * b + j)]) > d / 2) ++bad;
    }
    CHECK(bad == 0);
    fill(8.0f);
    rcpu::io::quantize(GgmlType::q4_0, x.data(), x.size(), q4.data());
    rcpu::io::dequantize(GgmlType::q4_0, q4.data(), q4.size(), y.data(), y.size());
    bad = 0;
    for (int b = 0; b < nb; ++b) {
      const float d = std::fabs(rcpu::io::detail::half_to_float(rcpu::io::detail::load_u16(&q4[std::size_t(18 * b)])));
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[std::size_t(32 * b + j)] - y[std::size_t(32 * b + j)]) > d) ++bad;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("ggml_quants: quantize() and dequantize() refuse what they cannot do", "[ggml_quants]") {
  std::vector<float> x(512, 0.25f);
  std::vector<std::uint8_t> out(4096);
  for (const GgmlType t : {GgmlType::q2_k, GgmlType::q3_k, GgmlType::q4_k, GgmlType::q5_k, GgmlType::q6_k,
                           GgmlType::q8_k, GgmlType::q4_1, GgmlType::q5_0, GgmlType::q5_1, GgmlType::q8_1,
                           GgmlType::iq4_nl, GgmlType::i8, GgmlType::f64}) {
    INFO(rcpu::io::to_string(t));
    CHECK_THROWS_AS(rcpu::io::quantize(t, x.data(), 256, out.data()), rcpu::invalid_argument);
  }
  CHECK_THROWS_AS(rcpu::io::quantize(static_cast<GgmlType>(4), x.data(), 32, out.data()), rcpu::invalid_argument);
  for (const GgmlType t : {GgmlType::q8_0, GgmlType::q4_0})
    for (const std::uint64_t n : {1, 16, 31, 33, 48, 100}) {
      INFO(rcpu::io::to_string(t) << " n = " << n);
      CHECK_THROWS_AS(rcpu::io::quantize(t, x.data(), n, out.data()), rcpu::invalid_argument);
    }
  CHECK_NOTHROW(rcpu::io::quantize(GgmlType::q8_0, x.data(), 64, out.data()));
  CHECK_NOTHROW(rcpu::io::quantize(GgmlType::f16, x.data(), 31, out.data()));  // no blocks
  // a non-finite value in a quantized block
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
    for (const GgmlType t : {GgmlType::q8_0, GgmlType::q4_0}) {
      x[37] = bad;
      INFO(rcpu::io::to_string(t) << " " << bad);
      CHECK_THROWS_AS(rcpu::io::quantize(t, x.data(), 64, out.data()), rcpu::invalid_argument);
      CHECK_NOTHROW(rcpu::io::quantize(GgmlType::f16, x.data(), 64, out.data()));
      CHECK_NOTHROW(rcpu::io::quantize(GgmlType::bf16, x.data(), 64, out.data()));
    }
  // dequantize: whole super-blocks and exact sizes only; types rcpu cannot read
  std::vector<float> y(512);
  CHECK_NOTHROW(rcpu::io::dequantize(GgmlType::q6_k, out.data(), 210, y.data(), 256));
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q6_k, out.data(), 209, y.data(), 256), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q4_k, out.data(), 144, y.data(), 128), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::io::dequantize(GgmlType::q2_k, out.data(), 84, y.data(), 512), rcpu::invalid_argument);
  for (const GgmlType t : {GgmlType::q8_1, GgmlType::iq4_nl, GgmlType::iq4_xs, GgmlType::i64}) {
    INFO(rcpu::io::to_string(t));
    const std::uint64_t n = rcpu::io::ggml_type_traits(static_cast<std::uint32_t>(t))->block_size;
    CHECK_THROWS_AS(rcpu::io::dequantize(t, out.data(), rcpu::io::ggml_bytes(t, n), y.data(), n), rcpu::invalid_argument);
  }
}
