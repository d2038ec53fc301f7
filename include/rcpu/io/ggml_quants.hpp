// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_GGML_QUANTS_HPP
#define RCPU_IO_GGML_QUANTS_HPP

/// \file ggml_quants.hpp
/// ggml's tensor element types as GGUF stores them: sizes and block layouts, dequantization to float
/// (F32, F16, BF16, F64, I8/I16/I32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants Q2_K, Q3_K,
/// Q4_K, Q5_K, Q6_K, Q8_K), and quantization from float to F32, F16, BF16, Q8_0 and Q4_0 with the
/// rounding of PyPI gguf's `gguf.quants` (bit-exact; tests/io/test_ggml_quants.cpp checks it on
/// vectors that gguf 0.19.0 wrote).
///
/// Optional part of rcpu: not included by rcpu.hpp (rcpu/io/gguf.hpp includes it).

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>

#include "../error.hpp"

namespace rcpu {
namespace io {

/// Tensor element type (ggml's numbering). Only the ones listed in ggml_type_traits() are known.
enum class GgmlType : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq4_nl = 20,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  bf16 = 30
};

/// Storage layout of a tensor type: `block_size` elements take `type_size` bytes.
struct GgmlTypeTraits {
  const char* name;
  std::uint64_t block_size;
  std::uint64_t type_size;
  bool dequantizable;  ///< whether rcpu can convert it to float (dequantize())
  bool quantizable;    ///< whether rcpu can write it from float (quantize())
};

/// Traits of a ggml type id, or nullptr for an id rcpu does not know (its size is then unknown too).
inline const GgmlTypeTraits* ggml_type_traits(std::uint32_t type) {
  // Sizes from the block layouts: e.g. Q4_0 = f16 scale + 16 bytes of nibbles for 32 values.
  static const GgmlTypeTraits f32{"F32", 1, 4, true, true}, f16{"F16", 1, 2, true, true}, q4_0{"Q4_0", 32, 18, true, true},
      q4_1{"Q4_1", 32, 20, true, false}, q5_0{"Q5_0", 32, 22, true, false}, q5_1{"Q5_1", 32, 24, true, false}, q8_0{"Q8_0", 32, 34, true, true},
      q8_1{"Q8_1", 32, 36, false, false}, q2_k{"Q2_K", 256, 84, true, false}, q3_k{"Q3_K", 256, 110, true, false},
      q4_k{"Q4_K", 256, 144, true, false}, q5_k{"Q5_K", 256, 176, true, false}, q6_k{"Q6_K", 256, 210, true, false},
      q8_k{"Q8_K", 256, 292, true, false}, iq4_nl{"IQ4_NL", 32, 18, false, false}, iq4_xs{"IQ4_XS", 256, 136, false, false},
      i8{"I8", 1, 1, true, false}, i16{"I16", 1, 2, true, false}, i32{"I32", 1, 4, true, false}, i64{"I64", 1, 8, false, false},
      f64{"F64", 1, 8, true, false}, bf16{"BF16", 1, 2, true, true};
  switch (type) {
    case 0: return &f32;
    case 1: return &f16;
    case 2: return &q4_0;
    case 3: return &q4_1;
    case 6: return &q5_0;
    case 7: return &q5_1;
    case 8: return &q8_0;
    case 9: return &q8_1;
    case 10: return &q2_k;
    case 11: return &q3_k;
    case 12: return &q4_k;
    case 13: return &q5_k;
    case 14: return &q6_k;
    case 15: return &q8_k;
    case 20: return &iq4_nl;
    case 23: return &iq4_xs;
    case 24: return &i8;
    case 25: return &i16;
    case 26: return &i32;
    case 27: return &i64;
    case 28: return &f64;
    case 30: return &bf16;
    default: return nullptr;
  }
}

inline const char* to_string(GgmlType type) {
  const GgmlTypeTraits* t = ggml_type_traits(static_cast<std::uint32_t>(type));
  return t ? t->name : "unknown";
}

/// The type named `name` in any case ("q8_0", "F16"). With `writable`, only the types quantize()
/// writes are accepted. \throws rcpu::invalid_argument naming the accepted types.
inline GgmlType ggml_type_from_string(const std::string& name, bool writable = false) {
  const auto lower = [](std::string x) {
    for (char& c : x) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    return x;
  };
  std::string accepted;
  for (std::uint32_t id = 0; id < 64; ++id) {
    const GgmlTypeTraits* t = ggml_type_traits(id);
    if (t == nullptr || (writable && !t->quantizable)) continue;
    if (lower(t->name) == lower(name)) return static_cast<GgmlType>(id);
    accepted += std::string(accepted.empty() ? "" : ", ") + lower(t->name);
  }
  throw invalid_argument("unknown " + std::string(writable ? "writable " : "") + "ggml type '" + name + "' (" +
                         accepted + ")");
}

namespace detail {

inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

inline bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
  out = a + b;
  return true;
}

/// IEEE half to float, exact for every input (subnormals, infinities and NaNs included).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (mant & 0x3FFu) << 13;
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | mant << 13;
  } else {
    bits = sign | (exp + (127 - 15)) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Little-endian loads that do not depend on the host's byte order or alignment.
inline std::uint16_t load_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (static_cast<std::uint16_t>(p[1]) << 8));
}
inline std::uint32_t load_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline std::uint64_t load_u64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(load_u32(p)) | static_cast<std::uint64_t>(load_u32(p + 4)) << 32;
}
inline float load_f32(const std::uint8_t* p) {
  const std::uint32_t u = load_u32(p);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline double load_f64(const std::uint8_t* p) {
  const std::uint64_t u = load_u64(p);
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

/// x * y rounded to float once. The product of two floats is exact in double, so this is IEEE float
/// multiplication; written this way the compiler cannot fuse it with a following float addition into
/// an FMA (which -ffp-contract would do, and gguf.quants' numpy never does).
inline float mul_unfused(float x, float y) {
  return static_cast<float>(static_cast<double>(x) * static_cast<double>(y));
}

/// The 6-bit scale `sc` and min `m` of sub-block j (0..7) of Q4_K and Q5_K from their 12 packed bytes
/// `s`: for j < 4 the low six bits of s[j] (scale) and s[j + 4] (min); for j >= 4 the low and high
/// nibbles of s[j + 4], with their top two bits from the top two bits of s[j - 4] and s[j].
inline void k_scale_min(const std::uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 0x3F;
    m = s[j + 4] & 0x3F;
  } else {
    sc = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
    m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

/// The signed 6-bit scale of group g (0..15) of Q3_K from its 12 packed bytes `s`: the low nibble is
/// s[g % 8] >> 4 * (g / 8), the top two bits are s[8 + g % 4] >> 2 * (g / 4); the value is offset by 32.
inline int q3_k_scale(const std::uint8_t* s, int g) {
  const int lo = (s[g % 8] >> (4 * (g / 8))) & 0x0F, hi = (s[8 + g % 4] >> (2 * (g / 4))) & 0x03;
  return (lo | hi << 4) - 32;
}

}  // namespace detail


/// Converts `n` elements of type `type` stored in `src` (exactly `src_bytes` bytes) to float, bit for
/// bit as gguf.quants.dequantize (PyPI gguf 0.19.0) does: float arithmetic in its order, no fused
/// multiply-add (with half scales the products before an addition are exact anyway; mul_unfused
/// keeps that from mattering). Q8_K, which gguf.quants lacks, as ggml's dequantize_row_q8_K: x = d * q.
/// \throws rcpu::invalid_argument if the type cannot be dequantized, `n` is not a whole number of
///         blocks, or `src_bytes` is not the size of `n` elements.
inline void dequantize(GgmlType type, const std::uint8_t* src, std::uint64_t src_bytes, float* dst, std::uint64_t n) {
  const GgmlTypeTraits* t = ggml_type_traits(static_cast<std::uint32_t>(type));
  if (t == nullptr || !t->dequantizable)
    throw invalid_argument(std::string("gguf: cannot dequantize tensors of type ") +
                           (t ? t->name : std::to_string(static_cast<std::uint32_t>(type)).c_str()));
  std::uint64_t need = 0;
  if (n % t->block_size != 0 || !detail::checked_mul(n / t->block_size, t->type_size, need) || need != src_bytes) {
    std::ostringstream os;
    os << "gguf: dequantize: " << n << " elements of type " << t->name << " need " << need << " bytes in blocks of "
       << t->block_size << ", got " << src_bytes;
    throw invalid_argument(os.str());
  }
  const std::uint64_t nb = n / t->block_size;
  using detail::half_to_float;
  switch (type) {
    case GgmlType::f32:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = detail::load_f32(src + 4 * i);
      break;
    case GgmlType::f16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = half_to_float(detail::load_u16(src + 2 * i));
      break;
    case GgmlType::bf16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = detail::bf16_to_float(detail::load_u16(src + 2 * i));
      break;
    case GgmlType::f64:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(detail::load_f64(src + 8 * i));
      break;
    case GgmlType::i8:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<std::int8_t>(src[i]));
      break;
    case GgmlType::i16:
      for (std::uint64_t i = 0; i < n; ++i)
        dst[i] = static_cast<float>(static_cast<std::int16_t>(detail::load_u16(src + 2 * i)));
      break;
    case GgmlType::i32:
      for (std::uint64_t i = 0; i < n; ++i)
        dst[i] = static_cast<float>(static_cast<std::int32_t>(detail::load_u32(src + 4 * i)));
      break;
    case GgmlType::q4_0:  // {f16 d; u8 qs[16]}: x = (nibble - 8) * d, low nibbles first
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 18;
        const float d = half_to_float(detail::load_u16(blk));
        float* y = dst + b * 32;
        for (int j = 0; j < 16; ++j) {
          y[j] = static_cast<float>((blk[2 + j] & 0x0F) - 8) * d;
          y[j + 16] = static_cast<float>((blk[2 + j] >> 4) - 8) * d;
        }
      }
      break;
    case GgmlType::q4_1:  // {f16 d; f16 m; u8 qs[16]}: x = nibble * d + m
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 20;
        const float d = half_to_float(detail::load_u16(blk)), m = half_to_float(detail::load_u16(blk + 2));
        float* y = dst + b * 32;
        for (int j = 0; j < 16; ++j) {
          y[j] = detail::mul_unfused(d, static_cast<float>(blk[4 + j] & 0x0F)) + m;
          y[j + 16] = detail::mul_unfused(d, static_cast<float>(blk[4 + j] >> 4)) + m;
        }
      }
      break;
    case GgmlType::q5_0:  // {f16 d; u32 qh; u8 qs[16]}: fifth bit of value j in bit j of qh; x = (q - 16) * d
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 22;
        const float d = half_to_float(detail::load_u16(blk));
        const std::uint32_t qh = detail::load_u32(blk + 2);
        float* y = dst + b * 32;
        for (int j = 0; j < 16; ++j) {
          const int lo = (blk[6 + j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int hi = (blk[6 + j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          y[j] = static_cast<float>(lo - 16) * d;
          y[j + 16] = static_cast<float>(hi - 16) * d;
        }
      }
      break;
    case GgmlType::q5_1:  // {f16 d; f16 m; u32 qh; u8 qs[16]}: x = q * d + m
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 24;
        const float d = half_to_float(detail::load_u16(blk)), m = half_to_float(detail::load_u16(blk + 2));
        const std::uint32_t qh = detail::load_u32(blk + 4);
        float* y = dst + b * 32;
        for (int j = 0; j < 16; ++j) {
          const int lo = (blk[8 + j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int hi = (blk[8 + j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          y[j] = detail::mul_unfused(d, static_cast<float>(lo)) + m;
          y[j + 16] = detail::mul_unfused(d, static_cast<float>(hi)) + m;
        }
      }
      break;
    case GgmlType::q8_0:  // {f16 d; i8 qs[32]}: x = q * d
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 34;
        const float d = half_to_float(detail::load_u16(blk));
        float* y = dst + b * 32;
        for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(blk[2 + j])) * d;
      }
      break;
    // The K-quants: super-blocks of 256 values in sub-blocks with their own integer scales (and mins).
    case GgmlType::q2_k:  // {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: 16 groups of 16, scales[g] = sc | mn << 4;
      // value e: 2 bits at 2 * ((e % 128) / 32) of qs[32 * (e / 128) + e % 32]; x = (d * sc) * q - dmin * mn
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 84;
        const float d = half_to_float(detail::load_u16(blk + 80)), dmin = half_to_float(detail::load_u16(blk + 82));
        float* y = dst + b * 256;
        for (int g = 0; g < 16; ++g) {
          const float dl = d * static_cast<float>(blk[g] & 0x0F);
          const float ml = detail::mul_unfused(dmin, static_cast<float>(blk[g] >> 4));
          for (int e = 16 * g; e < 16 * g + 16; ++e) {
            const int q = (blk[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 0x03;
            y[e] = detail::mul_unfused(dl, static_cast<float>(q)) - ml;
          }
        }
      }
      break;
    case GgmlType::q3_k:  // {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 16 groups of 16 with signed 6-bit
      // scales (detail::q3_k_scale); value e: 2 low bits as in Q2_K, minus 4 unless bit e / 32 of
      // hmask[e % 32] is set; x = (d * sc) * q
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 110;
        const float d = half_to_float(detail::load_u16(blk + 108));
        float* y = dst + b * 256;
        for (int g = 0; g < 16; ++g) {
          const float dl = d * static_cast<float>(detail::q3_k_scale(blk + 96, g));
          for (int e = 16 * g; e < 16 * g + 16; ++e) {
            const int lo = (blk[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 0x03;
            const int q = lo - (((blk[e % 32] >> (e / 32)) & 1) ? 0 : 4);
            y[e] = dl * static_cast<float>(q);
          }
        }
      }
      break;
    case GgmlType::q4_k:  // {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 8 groups of 32 with 6-bit scales and
      // mins (detail::k_scale_min); value e: nibble 4 * ((e % 64) / 32) of qs[32 * (e / 64) + e % 32];
      // x = (d * sc) * q - dmin * mn
    case GgmlType::q5_k:  // {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: as Q4_K, with the fifth
      // bit of value e at bit e / 32 of qh[e % 32]
      {
        const bool five = type == GgmlType::q5_k;
        const std::uint64_t size = five ? 176 : 144;
        for (std::uint64_t b = 0; b < nb; ++b) {
          const std::uint8_t* blk = src + b * size;
          const std::uint8_t* qs = blk + (five ? 48 : 16);
          const float d = half_to_float(detail::load_u16(blk)), dmin = half_to_float(detail::load_u16(blk + 2));
          float* y = dst + b * 256;
          for (int g = 0; g < 8; ++g) {
            int sc = 0, mn = 0;
            detail::k_scale_min(blk + 4, g, sc, mn);
            const float dl = d * static_cast<float>(sc), ml = detail::mul_unfused(dmin, static_cast<float>(mn));
            for (int e = 32 * g; e < 32 * g + 32; ++e) {
              int q = (qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0x0F;
              if (five) q |= ((blk[16 + e % 32] >> (e / 32)) & 1) << 4;
              y[e] = detail::mul_unfused(dl, static_cast<float>(q)) - ml;
            }
          }
        }
      }
      break;
    case GgmlType::q6_k:  // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 16 groups of 16; value e: low nibble
      // 4 * ((e % 128) / 64) of ql[64 * (e / 128) + e % 64], top two bits at 2 * ((e % 128) / 32) of
      // qh[32 * (e / 128) + e % 32], offset by 32; x = (d * sc) * q
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 210;
        const float d = half_to_float(detail::load_u16(blk + 208));
        float* y = dst + b * 256;
        for (int g = 0; g < 16; ++g) {
          const float dl = d * static_cast<float>(static_cast<std::int8_t>(blk[192 + g]));
          for (int e = 16 * g; e < 16 * g + 16; ++e) {
            const int lo = (blk[64 * (e / 128) + e % 64] >> (4 * ((e % 128) / 64))) & 0x0F;
            const int hi = (blk[128 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 0x03;
            y[e] = dl * static_cast<float>((lo | hi << 4) - 32);
          }
        }
      }
      break;
    case GgmlType::q8_k:  // {f32 d; i8 qs[256]; i16 bsums[16] (sums of groups of 16, unused)}: x = d * q
      for (std::uint64_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = src + b * 292;
        const float d = detail::load_f32(blk);
        float* y = dst + b * 256;
        for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(static_cast<std::int8_t>(blk[4 + j]));
      }
      break;
    default:
      throw invalid_argument(std::string("gguf: cannot dequantize tensors of type ") + t->name);
  }
}

namespace detail {

/// Float to IEEE half with round-to-nearest-even, as numpy's astype(float16) does: overflow gives
/// infinity, tiny values round to subnormals or zero. A NaN keeps its sign and the top ten bits of its
/// payload, quiet or signalling as it was (numpy's npy_floatbits_to_halfbits; the F16C instructions
/// would set the quiet bit), and becomes 0x7C01 if those ten bits are zero: half_to_float followed by
/// float_to_half is the identity on all 65536 halves.
inline std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) {  // NaN
    const std::uint32_t payload = (ax >> 13) & 0x3FFu;
    return static_cast<std::uint16_t>(sign | 0x7C00u | (payload != 0 ? payload : 1u));
  }
  if (ax == 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
  if (ax >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to >= 2^16: infinity
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half (or zero), rounded at 2^-24
    if (ax < 0x33000000u) return sign;  // below 2^-25: rounds to zero (2^-25 itself ties to even zero)
    const std::uint32_t e = ax >> 23, mant = (ax & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14..24 for e in [102, 112]
    std::uint32_t q = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even (a carry into
  // the exponent is the right result).
  const std::uint32_t r = ax - 0x38000000u;
  std::uint32_t q = r >> 13;
  const std::uint32_t rem = r & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return static_cast<std::uint16_t>(sign | q);
}

/// Float to bfloat16 as ggml (ggml_compute_fp32_to_bf16) and gguf.quants do: NaN forced quiet,
/// everything else rounded to nearest even.
inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 64u);
  return static_cast<std::uint16_t>((static_cast<std::uint64_t>(x) + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

inline void store_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline void store_u32(std::uint8_t* p, std::uint32_t v) {
  store_u16(p, static_cast<std::uint16_t>(v));
  store_u16(p + 2, static_cast<std::uint16_t>(v >> 16));
}

/// numpy's np_roundf of gguf.quants: round half away from zero, via floor.
inline float round_half_away(float n) {
  const float a = std::fabs(n);
  const float fl = std::floor(a);
  const float b = fl + std::floor(2.0f * (a - fl));
  return n < 0 ? -b : (n > 0 ? b : 0.0f);
}

}  // namespace detail

/// Bytes that `n` elements of `type` take (n a whole number of blocks).
/// \throws rcpu::invalid_argument for an unknown type or n not a multiple of its block size.
inline std::uint64_t ggml_bytes(GgmlType type, std::uint64_t n) {
  const GgmlTypeTraits* t = ggml_type_traits(static_cast<std::uint32_t>(type));
  if (t == nullptr) throw invalid_argument("ggml: unknown type " + std::to_string(static_cast<std::uint32_t>(type)));
  std::uint64_t out = 0;
  if (n % t->block_size != 0 || !detail::checked_mul(n / t->block_size, t->type_size, out))
    throw invalid_argument(std::string("ggml: ") + std::to_string(n) + " elements are not a whole number of " +
                           t->name + " blocks of " + std::to_string(t->block_size));
  return out;
}

/// Converts `n` floats at `src` to `type` at `dst` (ggml_bytes(type, n) bytes), rounding exactly as
/// PyPI gguf 0.19.0's gguf.quants: F16 and BF16 to nearest even; Q8_0 with d = max|x| / 127 and
/// q = round-half-away(x * (1 / d)); Q4_0 with d = (the x of largest |x|, first one) / -8 and
/// q = min(15, trunc(x * (1 / d) + 8.5)), all in float arithmetic.
/// \throws rcpu::invalid_argument if rcpu cannot write `type`, n is not a whole number of blocks, or
///         a quantized type meets a non-finite value (its scale would be meaningless).
inline void quantize(GgmlType type, const float* src, std::uint64_t n, std::uint8_t* dst) {
  const GgmlTypeTraits* t = ggml_type_traits(static_cast<std::uint32_t>(type));
  if (t == nullptr || !t->quantizable)
    throw invalid_argument(std::string("ggml: cannot write tensors of type ") +
                           (t ? t->name : std::to_string(static_cast<std::uint32_t>(type)).c_str()) +
                           " (rcpu writes F32, F16, BF16, Q8_0 and Q4_0)");
  (void)ggml_bytes(type, n);  // checks the block count
  const auto require_finite_block = [&](std::uint64_t b) {
    for (std::uint64_t j = 0; j < t->block_size; ++j)
      if (!std::isfinite(src[b * t->block_size + j]))
        throw invalid_argument(std::string("ggml: cannot quantize the non-finite value at element ") +
                               std::to_string(b * t->block_size + j) + " to " + t->name);
  };
  switch (type) {
    case GgmlType::f32:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, src + i, sizeof u);
        detail::store_u32(dst + 4 * i, u);
      }
      return;
    case GgmlType::f16:
      for (std::uint64_t i = 0; i < n; ++i) detail::store_u16(dst + 2 * i, detail::float_to_half(src[i]));
      return;
    case GgmlType::bf16:
      for (std::uint64_t i = 0; i < n; ++i) detail::store_u16(dst + 2 * i, detail::float_to_bf16(src[i]));
      return;
    case GgmlType::q8_0:
      for (std::uint64_t b = 0; b < n / 32; ++b) {
        require_finite_block(b);
        const float* x = src + 32 * b;
        std::uint8_t* blk = dst + 34 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        detail::store_u16(blk, detail::float_to_half(d));
        for (int j = 0; j < 32; ++j) {
          // |q| <= 127 when id is finite; where 1 / d overflows (max|x| < ~3.7e-37; d's half is then 0)
          // the products are inf or NaN, which numpy's cast to int8 makes 0 on x86-64: so do we.
          const float q = detail::round_half_away(detail::mul_unfused(x[j], id));
          blk[2 + j] = std::isfinite(q) ? static_cast<std::uint8_t>(static_cast<std::int8_t>(q)) : std::uint8_t{0};
        }
      }
      return;
    case GgmlType::q4_0:
      for (std::uint64_t b = 0; b < n / 32; ++b) {
        require_finite_block(b);
        const float* x = src + 32 * b;
        std::uint8_t* blk = dst + 18 * b;
        float amax = std::fabs(x[0]), mx = x[0];  // x[0] when all are zeros: -0.0 gives d = +0.0
        for (int j = 1; j < 32; ++j)
          if (std::fabs(x[j]) > amax) {  // strictly greater: the first of equal magnitudes, as argmax
            amax = std::fabs(x[j]);
            mx = x[j];
          }
        const float d = mx / -8.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        detail::store_u16(blk, detail::float_to_half(d));
        std::uint8_t q[32];
        for (int j = 0; j < 32; ++j) {
          // v is in [0, 16] when id is finite; inf and NaN (1 / d overflowed, as in Q8_0) give 0 like
          // numpy's cast to uint8 on x86-64.
          const float v = std::trunc(detail::mul_unfused(x[j], id) + 8.5f);
          q[j] = std::isfinite(v) ? static_cast<std::uint8_t>(std::fmin(15.0f, std::fmax(0.0f, v))) : std::uint8_t{0};
        }
        for (int j = 0; j < 16; ++j) blk[2 + j] = static_cast<std::uint8_t>(q[j] | (q[j + 16] << 4));
      }
      return;
    default:
      break;
  }
  throw invalid_argument(std::string("ggml: cannot write tensors of type ") + t->name);
}

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_GGML_QUANTS_HPP
