// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_HASH_HPP
#define RCPU_DETAIL_HASH_HPP

#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>

namespace rcpu {
namespace detail {

// FNV-1a, 64 bits: fingerprints that caches and processes compare (not a security boundary).
struct Fnv1a {
  std::uint64_t h;
  explicit Fnv1a(std::uint64_t basis = 14695981039346656037ull) : h(basis) {}
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  // With a terminating zero byte, so that "ab" + "c" and "a" + "bc" differ.
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);
  }
  std::string hex() const {
    std::ostringstream os;
    os << std::hex << std::setw(16) << std::setfill('0') << h;
    return os.str();
  }
};

}  // namespace detail
}  // namespace rcpu

#endif  // RCPU_DETAIL_HASH_HPP
