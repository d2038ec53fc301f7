// `rcpu prune-model` on the real stories260K model (../shared/data; the cases say SKIPPED when it is
// absent): the files of the chosen types with their provenance, and every bad argument or file gets
// one line on stderr, a non-zero exit and no file (an existing output untouched). That the written
// model is the one rcpu::model::prune_model() makes is checked in tests/pipeline/export_checks.hpp.
// Part of test_cli's unity TU (uses its run_cli / one_line).
#include <rcpu/io/gguf.hpp>

#include <fstream>

namespace {

std::string pm_model_path() {
  const char* env = std::getenv("RCPU_DATA_DIR");
  const std::string data = env && *env ? std::string(env) : std::string(RCPU_SOURCE_DIR "/../shared/data");
  return data + "/stories260K.gguf";
}

// A calibration text in stories260K's domain, long enough for windows of 32 tokens.
std::string pm_text() {
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
         "friends. One day, she saw a big red ball under a tree. She ran to the ball and kicked it very high. ";
  return s;
}

}  // namespace

TEST_CASE("prune-model writes GGUF files of the chosen types, with their provenance", "[cli][prune_model]") {
  const std::string model = pm_model_path();
  if (!std::ifstream(model)) {
    WARN("SKIPPED: " << model << " not found (see docs/models.md; set RCPU_DATA_DIR)");
    return;
  }
  TempDir dir("cli-pm");
  write_bytes(dir / "calib.txt", pm_text());
  const Result r = run_cli(dir, std::string("prune-model '") + model + "' -o " + (dir / "out.gguf") +
                                    " --ratio 0.3 --method flap_alam --calib " + (dir / "calib.txt") +
                                    " --windows 5 --seq 32 --seed 7");
  REQUIRE(r.status == 0);
  CHECK(r.out.find("parameters 292800 -> ") != std::string::npos);
  CHECK(r.out.find("deci, F32 weights") != std::string::npos);  // per-layer sizes: deci
  CHECK(r.err.find("5/5 layers") != std::string::npos);          // the progress bar
  const rcpu::io::GgufFile g = rcpu::io::GgufFile::open(dir / "out.gguf");
  CHECK(g.get_string("general.architecture", "") == "deci");
  CHECK(g.get_string("rcpu.method", "") == "flap_alam");
  CHECK(g.get_int("rcpu.calibration.windows", 0) == 5);
  CHECK(g.get_int("rcpu.calibration.seed", 0) == 7);
  CHECK(g.get_string("rcpu.statistics", "") == "pruned_prefix");
  // --statistics dense: recorded in the provenance.
  const Result d = run_cli(dir, std::string("prune-model '") + model + "' -o " + (dir / "dense-stats.gguf") +
                                    " --ratio 0.3 --method flap --statistics dense --calib " + (dir / "calib.txt") +
                                    " --windows 5 --seq 32 --quiet");
  REQUIRE(d.status == 0);
  CHECK(rcpu::io::GgufFile::open(dir / "dense-stats.gguf").get_string("rcpu.statistics", "") == "dense");
  // --round-to and --type: Q8_0 rows need multiples of 32.
  const Result q = run_cli(dir, std::string("prune-model '") + model + "' -o " + (dir / "q.gguf") +
                                    " --ratio 0.3 --calib " + (dir / "calib.txt") +
                                    " --windows 5 --seq 32 --round-to 32 --type q8_0 --quiet");
  REQUIRE(q.status == 0);
  CHECK(q.out.empty());
  const rcpu::io::GgufFile g8 = rcpu::io::GgufFile::open(dir / "q.gguf");
  CHECK(g8.tensor("blk.0.ffn_down.weight").type == rcpu::io::GgmlType::q8_0);
  CHECK(g8.tensor("blk.0.ffn_down.weight").shape[0] % 32 == 0);
  // Several types from one pruning run: one file each, the same model.
  const Result multi = run_cli(dir, std::string("prune-model '") + model + "' -o " + (dir / "m-{type}.gguf") +
                                        " --ratio 0.3 --calib " + (dir / "calib.txt") +
                                        " --windows 5 --seq 32 --round-to 32 --type f32,q8_0 --quiet");
  REQUIRE(multi.status == 0);
  const rcpu::io::GgufFile m32 = rcpu::io::GgufFile::open(dir / "m-f32.gguf");
  CHECK(read_bytes(dir / "m-q8_0.gguf") == read_bytes(dir / "q.gguf"));
  CHECK(m32.tensor("blk.0.ffn_down.weight").type == rcpu::io::GgmlType::f32);
  CHECK(rcpu::io::GgufFile::open(dir / "m-q8_0.gguf").get_int("general.file_type", -1) == 7);
}

TEST_CASE("prune-model: every bad argument or file gets one line, a non-zero exit, nothing written",
          "[cli][prune_model]") {
  TempDir dir("cli-pm-bad");
  const std::string model = pm_model_path();
  const bool have_model = bool(std::ifstream(model));
  write_bytes(dir / "calib.txt", pm_text());
  write_bytes(dir / "short.txt", "Once upon a time.");
  write_bytes(dir / "not.gguf", "this is not a GGUF file, just text that is long enough to be read");
  write_bytes(dir / "out.gguf", "an earlier output");
  const std::string m = have_model ? "'" + model + "'" : dir / "not.gguf";
  const std::string good = " -o " + (dir / "out.gguf") + " --ratio 0.2 --calib " + (dir / "calib.txt") + " --seq 32 --windows 2";
  struct Bad {
    std::string args;
    int status;
    const char* says;
  };
  std::vector<Bad> cases = {
      {"prune-model", 2, "exactly one input model"},
      {"prune-model " + m + " " + m + good, 2, "exactly one input model"},
      {"prune-model " + m + " --ratio 0.2 --calib " + (dir / "calib.txt"), 2, "-o OUT.gguf"},
      {"prune-model " + m + " -o " + (dir / "out.gguf") + " --calib " + (dir / "calib.txt"), 2, "--ratio"},
      {"prune-model " + m + " -o " + (dir / "out.gguf") + " --ratio 0.2", 2, "--calib"},
      {"prune-model " + m + good + " --ratio2 1", 2, "unknown option"},
      {"prune-model " + m + " -o " + (dir / "out.gguf") + " --ratio 1 --calib " + (dir / "calib.txt"), 2, "[0, 1)"},
      {"prune-model " + m + " -o " + (dir / "out.gguf") + " --ratio x --calib " + (dir / "calib.txt"), 2, "not a finite number"},
      {"prune-model " + m + good + " --method magic", 2, "unknown method 'magic'"},
      {"prune-model " + m + good + " --type q4_k", 2, "--type"},
      {"prune-model " + m + good + " --type f32,q8_0", 2, "{type}"},
      {"prune-model " + m + good + " --gqa-rule heads", 2, "unknown GQA rule"},
      {"prune-model " + m + good + " --gqa-fix none", 2, "unknown GQA fix"},
      {"prune-model " + m + good + " --statistics both", 2, "unknown statistics source"},
      {"prune-model " + m + good + " --round-to -1", 2, "--round-to"},
      {"prune-model " + m + good + " --lambda 0.1", 2, "--lambda is only used by --method ridge"},
      {"prune-model " + m + good + " --method ridge --lambda 0", 2, "--lambda must be > 0"},
      {"prune-model " + m + good + " --method rotation_ridge --lambda -1", 2, "--lambda must be > 0"},
      {"prune-model " + m + good + " --windows 0", 2, "--windows"},
      {"prune-model " + m + good + " --calib-fraction 0", 2, "--calib-fraction"},
      {"prune-model " + (dir / "absent.gguf") + good, 1, "no such file"},
      {"prune-model " + (dir / "not.gguf") + good, 1, "bad magic"},
      {"prune-model " + m + " -o " + (dir / "missing/out.gguf") + " --ratio 0.2 --calib " + (dir / "calib.txt"), 1,
       "does not exist"},
      {"prune-model " + m + " -o " + (dir / "out.gguf") + " --ratio 0.2 --calib " + (dir / "absent.txt"), 1,
       "no such file"},
  };
  if (have_model) {
    cases.push_back({"prune-model " + m + " -o " + m + " --ratio 0.2 --calib " + (dir / "calib.txt"), 1, "is the input model"});
    cases.push_back({"prune-model " + m + " -o " + (dir / "out.gguf") + " --ratio 0.2 --calib " + (dir / "short.txt") +
                         " --seq 64",
                     1, "hold no window"});
  }
  for (const Bad& b : cases) {
    INFO(b.args);
    const Result r = run_cli(dir, b.args);
    CHECK(r.status == b.status);
    CHECK(one_line(r.err));
    CHECK(r.err.find(b.says) != std::string::npos);
    CHECK(r.out.empty());
    CHECK(read_bytes(dir / "out.gguf") == "an earlier output");
    CHECK(list_dir(dir.str()) == std::vector<std::string>{"calib.txt", "not.gguf", "out.gguf", "short.txt", "stderr.txt", "stdout.txt"});
  }
}
