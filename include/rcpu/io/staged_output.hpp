// SPDX-License-Identifier: MIT
#ifndef RCPU_IO_STAGED_OUTPUT_HPP
#define RCPU_IO_STAGED_OUTPUT_HPP

/// \file staged_output.hpp
/// All-or-nothing output of a set of files and directories: each is written at a temporary sibling
/// path, and publish() moves them all into place as one step. If any move fails, every target is put
/// back as it was (the old file, the old directory, or nothing) and publish() throws; an object
/// destroyed before publish() deletes what it staged. A run that fails therefore changes nothing,
/// and a run that succeeds leaves no earlier output mixed with the new one.
///
/// Optional part of rcpu: not included by rcpu.hpp.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../error.hpp"

namespace rcpu {
namespace io {

/// Files and directories published together (see the file comment).
///
///     StagedOutput out;
///     write_file(out.stage("dir/weight.npy"));   // writes dir/weight.npy.rcpu-part
///     out.remove_on_publish("dir/bias.npy");     // an earlier run's output this run does not make
///     out.publish();                             // all moved into place, or none
class StagedOutput {
 public:
  /// How one path is moved to another (std::filesystem::rename by default). Tests pass one that fails
  /// on purpose, to check that every failure rolls back.
  using Rename = std::function<void(const std::filesystem::path& from, const std::filesystem::path& to,
                                    std::error_code& ec)>;

  StagedOutput() : m_rename(default_rename) {}
  explicit StagedOutput(Rename rename) : m_rename(std::move(rename)) {}
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;
  /// Deletes everything staged and not published.
  ~StagedOutput() { discard(); }

  /// Reserves the file `target` and returns the temporary path to write it at, `target` + ".rcpu-part".
  /// A leftover at that path from an earlier, interrupted run is deleted first.
  /// \throws rcpu::invalid_argument if `target` was already named, or exists and is not a regular file.
  std::filesystem::path stage(const std::filesystem::path& target) {
    add(target, true, std::filesystem::file_type::regular);
    return m_entries.back().part;
  }

  /// The same for a directory `target`, to be created at the returned path.
  /// \throws rcpu::invalid_argument if `target` was already named, or exists and is not a directory.
  std::filesystem::path stage_directory(const std::filesystem::path& target) {
    add(target, true, std::filesystem::file_type::directory);
    return m_entries.back().part;
  }

  /// The file `target` (an earlier run's output that this run does not produce) goes when publish()
  /// succeeds and stays when it fails. Nothing happens if it does not exist.
  void remove_on_publish(const std::filesystem::path& target) {
    add(target, false, std::filesystem::file_type::regular);
  }

  /// Moves every existing target aside, every staged path into place, and then deletes the old
  /// targets. \throws rcpu::invalid_argument when a move fails, after putting every target back.
  void publish() {
    namespace fs = std::filesystem;
    std::size_t done = 0;  // entries fully processed
    for (; done < m_entries.size(); ++done) {
      Entry& e = m_entries[done];
      std::error_code ec;
      if (fs::symlink_status(e.target, ec).type() != fs::file_type::not_found) {
        m_rename(e.target, e.old, ec);
        if (ec) return roll_back(done, "cannot move " + e.target.string() + " aside: " + ec.message());
        e.moved_aside = true;
      }
      if (e.staged) {
        m_rename(e.part, e.target, ec);
        if (ec) return roll_back(done, "cannot move " + e.part.string() + " into place: " + ec.message());
        e.placed = true;
      }
    }
    for (const Entry& e : m_entries) {
      std::error_code ec;
      if (e.moved_aside) fs::remove_all(e.old, ec);  // best effort: the new output is in place
    }
    m_entries.clear();
  }

  /// Deletes what was staged, publishes nothing.
  void discard() {
    for (const Entry& e : m_entries) {
      std::error_code ec;
      if (e.staged) std::filesystem::remove_all(e.part, ec);
    }
    m_entries.clear();
  }

 private:
  struct Entry {
    std::filesystem::path target, part, old;
    bool staged = false;       // a new version was written at `part`
    bool moved_aside = false;  // the old target is at `old`
    bool placed = false;       // `part` was moved to `target`
  };

  static void default_rename(const std::filesystem::path& from, const std::filesystem::path& to,
                             std::error_code& ec) {
    std::filesystem::rename(from, to, ec);
  }

  void add(const std::filesystem::path& target, bool staged, std::filesystem::file_type kind) {
    namespace fs = std::filesystem;
    for (const Entry& e : m_entries)
      if (e.target == target) throw invalid_argument("output " + target.string() + " is named twice");
    std::error_code ec;
    const fs::file_type type = fs::symlink_status(target, ec).type();
    if (type != fs::file_type::not_found && type != kind)
      throw invalid_argument("output " + target.string() + " exists and is not a " +
                             (kind == fs::file_type::directory ? "directory" : "regular file") + "; refusing to replace it");
    Entry e;
    e.target = target;
    e.part = fs::path(target.string() + ".rcpu-part");
    e.old = fs::path(target.string() + ".rcpu-old");
    e.staged = staged;
    fs::remove_all(e.old, ec);  // leftovers of an interrupted run
    if (staged) fs::remove_all(e.part, ec);
    m_entries.push_back(std::move(e));
  }

  // Undoes entries [0, failed] in reverse order, then throws `why` (and what could not be restored).
  [[noreturn]] void roll_back(std::size_t failed, const std::string& why) {
    std::string lost;
    for (std::size_t i = failed + 1; i-- > 0;) {
      Entry& e = m_entries[i];
      std::error_code ec;
      if (e.placed) {
        m_rename(e.target, e.part, ec);
        if (ec) lost += "; " + e.target.string() + " could not be taken back (" + ec.message() + ")";
        e.placed = bool(ec);  // still in place only if taking it back failed
      }
      if (e.moved_aside && !e.placed) {
        m_rename(e.old, e.target, ec);
        if (ec) lost += "; the old " + e.target.string() + " is left at " + e.old.string();
        e.moved_aside = bool(ec);
      }
    }
    discard();
    throw invalid_argument(why + " (nothing was changed" + (lost.empty() ? ")" : ", except:" + lost + ")"));
  }

  Rename m_rename;
  std::vector<Entry> m_entries;
};

}  // namespace io
}  // namespace rcpu

#endif  // RCPU_IO_STAGED_OUTPUT_HPP
