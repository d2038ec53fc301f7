// Helpers of the io and apps tests: a temporary directory that removes itself, and raw file access.
#ifndef RCPU_TESTS_IO_SUPPORT_HPP
#define RCPU_TESTS_IO_SUPPORT_HPP

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace rcpu_test {

/// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      m_path = base / ("rcpu-" + tag + "-" + std::to_string(rd()) + "-" + std::to_string(attempt));
      if (std::filesystem::create_directory(m_path)) return;
    }
    throw std::runtime_error("TempDir: cannot create a temporary directory");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (m_path / name).string(); }
  std::string str() const { return m_path.string(); }

 private:
  std::filesystem::path m_path;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

/// Names of the entries of a directory, sorted.
inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// Every path below `dir` (relative), with a file's bytes or "<dir>": equal snapshots mean nothing
/// in the tree changed.
inline std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = std::filesystem::relative(e.path(), dir).string();
    out[rel] = e.is_directory() ? std::string("<dir>") : read_bytes(e.path().string());
  }
  return out;
}

}  // namespace rcpu_test

#endif  // RCPU_TESTS_IO_SUPPORT_HPP
