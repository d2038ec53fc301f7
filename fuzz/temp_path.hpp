// A per-process temporary path for the fuzz targets that go through files (the .npy reader, the
// statistics loader): random, so that parallel fuzzer processes never share one.
#ifndef RCPU_FUZZ_TEMP_PATH_HPP
#define RCPU_FUZZ_TEMP_PATH_HPP

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

inline std::filesystem::path rcpu_fuzz_temp_path(const std::string& prefix, const std::string& suffix = "") {
  std::random_device rd;
  const auto t = std::uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  const std::uint64_t id = (std::uint64_t(rd()) << 32 ^ std::uint64_t(rd())) ^ t;
  char name[32];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(id));
  return std::filesystem::temp_directory_path() / (prefix + name + suffix);
}

#endif  // RCPU_FUZZ_TEMP_PATH_HPP
