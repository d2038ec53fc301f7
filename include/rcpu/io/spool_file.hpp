// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_SPOOL_FILE_HPP
#define RCPU_IO_SPOOL_FILE_HPP

/// \file spool_file.hpp
/// A scratch file that bytes are appended to and read back from by offset, deleted when the object
/// goes. A GGUF file starts with the table of every tensor's shape, which a streamed pipeline knows
/// only at the end; it spools each finished tensor here and writes the real file from it last, so
/// the encoded model lives on disk, not in memory (rcpu/model/export.hpp's StreamedExport).
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include <sys/types.h>  // off_t, for fseeko (files beyond 2 GiB)

#include "../error.hpp"

namespace rcpu {
namespace io {

static_assert(sizeof(off_t) >= 8, "rcpu/io/spool_file.hpp needs a 64-bit off_t (_FILE_OFFSET_BITS=64)");

/// See the file comment. Not copyable; movable only by pointer (hold it in a std::unique_ptr).
class SpoolFile {
 public:
  /// Creates (or truncates) the file at `path`. \throws rcpu::invalid_argument if it cannot.
  explicit SpoolFile(std::filesystem::path path) : m_path(std::move(path)) {
    m_file = std::fopen(m_path.c_str(), "w+b");
    if (m_file == nullptr) throw invalid_argument("SpoolFile: cannot create " + m_path.string());
  }
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;
  ~SpoolFile() {
    std::fclose(m_file);
    std::error_code ec;
    std::filesystem::remove(m_path, ec);
  }

  const std::filesystem::path& path() const { return m_path; }
  /// Bytes appended so far.
  std::uint64_t size() const { return m_size; }

  /// Appends `n` bytes and returns the offset of the first. \throws rcpu::invalid_argument if the
  /// write fails (disk full).
  std::uint64_t append(const void* data, std::size_t n) {
    const std::uint64_t at = m_size;
    if (n == 0) return at;
    if (fseeko(m_file, static_cast<off_t>(at), SEEK_SET) != 0 || std::fwrite(data, 1, n, m_file) != n ||
        std::fflush(m_file) != 0)
      throw invalid_argument("SpoolFile: " + m_path.string() + ": writing " + std::to_string(n) + " bytes at " +
                             std::to_string(at) + " failed (disk full?)");
    m_size += n;
    return at;
  }

  /// Reads `n` bytes at `offset` into `out`. \throws rcpu::invalid_argument if they were never written.
  void read(std::uint64_t offset, void* out, std::size_t n) const {
    if (offset > m_size || n > m_size - offset)
      throw invalid_argument("SpoolFile: " + m_path.string() + ": bytes [" + std::to_string(offset) + ", " +
                             std::to_string(offset + n) + ") were not written (" + std::to_string(m_size) + " were)");
    if (n == 0) return;
    if (std::fflush(m_file) != 0 || fseeko(m_file, static_cast<off_t>(offset), SEEK_SET) != 0 ||
        std::fread(out, 1, n, m_file) != n)
      throw invalid_argument("SpoolFile: " + m_path.string() + ": reading " + std::to_string(n) + " bytes at " +
                             std::to_string(offset) + " failed");
  }

 private:
  std::filesystem::path m_path;
  std::FILE* m_file = nullptr;
  std::uint64_t m_size = 0;
};

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_SPOOL_FILE_HPP
