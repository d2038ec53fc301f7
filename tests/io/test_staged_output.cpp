// rcpu::io::StagedOutput: a set of outputs is published all or nothing. Every rename of publish() is
// made to fail in turn (the first, the second, ...), and the tree must then be exactly as before.
#include <rcpu/io/staged_output.hpp>

#include <filesystem>
#include <string>

#include "../io/io_support.hpp"
#include "support.hpp"

using rcpu_test::read_bytes;
using rcpu_test::snapshot;
using rcpu_test::TempDir;
using rcpu_test::write_bytes;

namespace {

namespace fs = std::filesystem;

// An earlier run's outputs: two files this run replaces, one it drops, and a directory it replaces.
void earlier_run(const TempDir& t) {
  write_bytes(t / "weight.npy", "old weight");
  write_bytes(t / "report.json", "old report");
  write_bytes(t / "bias.npy", "old bias");
  fs::create_directory(t / "stats");
  write_bytes(t / "stats/marker", "old stats");
  write_bytes(t / "unrelated.txt", "the user's");
}

// Stages the new run: weight, report, a new kept.npy, a new stats directory; bias.npy goes.
void stage_new_run(rcpu::io::StagedOutput& out, const TempDir& t) {
  write_bytes(out.stage(t / "weight.npy").string(), "new weight");
  write_bytes(out.stage(t / "kept.npy").string(), "new kept");
  const fs::path s = out.stage_directory(t / "stats");
  fs::create_directory(s);
  write_bytes((s / "marker").string(), "new stats");
  write_bytes(out.stage(t / "report.json").string(), "new report");
  out.remove_on_publish(t / "bias.npy");
  out.remove_on_publish(t / "scores.npy");  // absent: nothing to do
}

}  // namespace

TEST_CASE("StagedOutput publishes every output at once", "[staged_output]") {
  TempDir t("staged");
  earlier_run(t);
  {
    rcpu::io::StagedOutput out;
    stage_new_run(out, t);
    out.publish();
  }
  const auto after = snapshot(t.str());
  CHECK(after.size() == 6);  // weight, kept, stats, stats/marker, report, unrelated
  CHECK(read_bytes(t / "weight.npy") == "new weight");
  CHECK(read_bytes(t / "kept.npy") == "new kept");
  CHECK(read_bytes(t / "report.json") == "new report");
  CHECK(read_bytes(t / "stats/marker") == "new stats");
  CHECK(read_bytes(t / "unrelated.txt") == "the user's");
  CHECK_FALSE(fs::exists(t / "bias.npy"));
}

TEST_CASE("StagedOutput destroyed before publish leaves the tree as it was", "[staged_output]") {
  TempDir t("staged");
  earlier_run(t);
  const auto before = snapshot(t.str());
  {
    rcpu::io::StagedOutput out;
    stage_new_run(out, t);
  }
  CHECK(snapshot(t.str()) == before);
}

TEST_CASE("StagedOutput rolls back when any rename of publish fails", "[staged_output]") {
  // The new run makes 8 renames: weight, stats and report are moved aside and replaced (6), kept.npy
  // is moved into place (1) and bias.npy aside (1). Fail each in turn, then none (publish succeeds).
  int failures_seen = 0;
  for (int fail_at = 0;; ++fail_at) {
    TempDir t("staged");
    earlier_run(t);
    const auto before = snapshot(t.str());
    int calls = 0;
    bool failed = false;
    rcpu::io::StagedOutput out([&](const fs::path& from, const fs::path& to, std::error_code& ec) {
      if (!failed && calls++ == fail_at) {
        failed = true;
        ec = std::make_error_code(std::errc::io_error);
        return;
      }
      fs::rename(from, to, ec);
    });
    stage_new_run(out, t);
    if (!failed && fail_at > 20) FAIL("publish makes more renames than expected");
    bool threw = false;
    try {
      out.publish();
    } catch (const rcpu::invalid_argument& e) {
      threw = true;
      CHECK(std::string(e.what()).find("nothing was changed)") != std::string::npos);
    }
    INFO("rename " << fail_at << " fails");
    if (!threw) {
      CHECK(read_bytes(t / "weight.npy") == "new weight");  // every rename went through
      CHECK(failures_seen == fail_at);
      break;
    }
    ++failures_seen;
    CHECK(snapshot(t.str()) == before);
  }
  CHECK(failures_seen == 8);
}

TEST_CASE("StagedOutput refuses a target named twice or of another kind", "[staged_output]") {
  TempDir t("staged");
  rcpu::io::StagedOutput out;
  (void)out.stage(t / "a.npy");
  CHECK_THROWS_AS(out.stage(t / "a.npy"), rcpu::invalid_argument);
  CHECK_THROWS_AS(out.remove_on_publish(t / "a.npy"), rcpu::invalid_argument);
  fs::create_symlink(t / "a.npy", t / "link.npy");
  CHECK_THROWS_AS(out.stage(t / "link.npy"), rcpu::invalid_argument);
  fs::create_directory(t / "dir.npy");  // a file output never replaces a directory, nor the reverse
  CHECK_THROWS_AS(out.stage(t / "dir.npy"), rcpu::invalid_argument);
  CHECK_THROWS_AS(out.remove_on_publish(t / "dir.npy"), rcpu::invalid_argument);
  write_bytes(t / "file", "x");
  CHECK_THROWS_AS(out.stage_directory(t / "file"), rcpu::invalid_argument);
}
